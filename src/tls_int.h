/*
 * tls_int.h - private to tls.c, tls_priority.c, tls_cache.c and
 * tls_verify.c (and their unit tests): the cipher suite table shared by the
 * priority translation and the Auth-SSL-Cipher names, the TLS session
 * cache, and client certificate verification.
 *
 * Session cache: `ssl_session_cache` tokens build a tls_cache_set per
 * server: `builtin[:N]` is the server's own cache of at most N sessions,
 * `shared:NAME:SIZE` is one cache per NAME in the process (bounded by SIZE
 * bytes), used by every server that names it and kept across reloads while a
 * configuration refers to it.  `none` and `off` store nothing.  Entries are
 * keyed by the server index + the session id, so a session resumes only on
 * the `servers` entry that issued it.  Every cache has its own mutex: the
 * GnuTLS db callbacks run in worker threads.
 */
#ifndef POSTERN_TLS_INT_H
#define POSTERN_TLS_INT_H

#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "clock.h"
#include "conf.h"

/* ---- cipher suite table (tls_priority.c) ---- */

/* OpenSSL / IANA name of a negotiated suite ("ECDHE-RSA-AES128-GCM-SHA256",
 * "TLS_AES_256_GCM_SHA384"); NULL when the table has no such suite. */
const char *tls_suite_openssl_name(gnutls_protocol_t version,
                                   gnutls_kx_algorithm_t kx,
                                   gnutls_cipher_algorithm_t cipher,
                                   gnutls_mac_algorithm_t mac);

/* Walk the table (tests): 0 past the end. */
int tls_suite_get(size_t i, const char **name_r, gnutls_kx_algorithm_t *kx_r,
                  gnutls_cipher_algorithm_t *cipher_r,
                  gnutls_mac_algorithm_t *mac_r);

/* ---- session cache (tls_cache.c) ---- */

#define TLS_CACHE_MAX_PER_SERVER 4
#define TLS_CACHE_BUILTIN_DEFAULT 20480   /* sessions, as NGINX */
#define TLS_CACHE_MAX_ENTRY 16384         /* bytes of one session's data */

struct tls_cache;

struct tls_cache_set {
    size_t n;                                   /* 0: nothing stored */
    struct tls_cache *v[TLS_CACHE_MAX_PER_SERVER];
    uint64_t server_index;                      /* prefix of every key */
    msec_t timeout;                             /* ssl_session_timeout */
};

/* Parse the ssl_session_cache tokens and take references on the caches.
 * 0 / -1 with err ("ssl_session_cache: ..."). */
int tls_cache_set_init(struct tls_cache_set *set,
                       const struct strlist *tokens, size_t server_index,
                       int timeout_sec, char *err, size_t errlen);
void tls_cache_set_free(struct tls_cache_set *set);

/* Install the db callbacks on a server session (nothing when set->n == 0). */
void tls_cache_set_attach(struct tls_cache_set *set, gnutls_session_t s);

/* The callbacks themselves, exposed for tests. */
int tls_cache_store(void *set, gnutls_datum_t key, gnutls_datum_t data);
gnutls_datum_t tls_cache_retrieve(void *set, gnutls_datum_t key);
int tls_cache_remove(void *set, gnutls_datum_t key);

/* Entries and bytes held by one cache (tests). */
void tls_cache_stats(struct tls_cache *c, size_t *entries_r, size_t *bytes_r);

/* ---- files (tls.c) ---- */

/* Read a whole file of at most max bytes into d (malloc'd, NUL after the
 * end); 0 / -1 with err naming the file. */
int tls_read_file(const char *path, size_t max, gnutls_datum_t *d,
                  char *err, size_t errlen);
/* Wipe and free what tls_read_file read. */
void tls_datum_wipe(gnutls_datum_t *d);

/* ---- client certificates (tls_verify.c) ---- */

struct tls_verify {
    enum verify_client mode;            /* ssl_verify_client */
    int depth;                          /* ssl_verify_depth */
    int send_ca_names;                  /* ssl_client_certificate given */
    gnutls_x509_trust_list_t trust;     /* the credentials' own (not ours) */
    gnutls_x509_crl_t *crls;            /* ssl_crl; none: no CRL check */
    unsigned ncrls;
};

/* Load a server's trust anchors into cred and its CRLs into v; 0 / -1
 * with err ("SETTING: what is wrong"). */
int tls_verify_init(struct tls_verify *v,
                    gnutls_certificate_credentials_t cred,
                    const struct server_conf *sc, char *err, size_t errlen);
void tls_verify_free(struct tls_verify *v);

/* After the handshake: verify is set to what the auth service is told
 * ("NONE", "SUCCESS", "FAILED:words").  0 the client goes on; -1 its
 * certificate is refused, -2 it sent none where one is required, with
 * err the log line's text. */
int tls_verify_peer(const struct tls_verify *v, gnutls_session_t s,
                    char *verify, size_t verifylen, char *err,
                    size_t errlen);

#endif
