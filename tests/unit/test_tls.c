/*
 * test_tls.c - tls.c and tls_cache.c against a real GnuTLS client: makes
 * throwaway RSA, ECDSA, CA and client certificates in a temporary directory,
 * builds server_conf structures by hand, runs tls_accept() in a thread on
 * one end of a socketpair and a client on the other.
 *
 * Every wait is bounded (socket timeouts, deadlines); the temporary
 * directory is removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "conn.h"
#include "tap.h"
#include "tls.h"
#include "tls_int.h"

static char tmpdir[64];
static char path_buf[48][128];
static int npaths;

/* A path in the temporary directory (kept for the cleanup). */
static const char *
tpath(const char *name)
{
    char *p = path_buf[npaths++];

    snprintf(p, sizeof(path_buf[0]), "%s/%s", tmpdir, name);
    return p;
}

static void
write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL || fwrite(data, 1, len, f) != len) {
        printf("Bail out! cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

static void
write_datum(const char *path, gnutls_datum_t *d)
{
    write_file(path, d->data, d->size);
    gnutls_free(d->data);
}

#define CHECK(x) do { if ((x) < 0) { \
    printf("Bail out! %s failed at line %d\n", #x, __LINE__); exit(1); } \
} while (0)

static gnutls_x509_privkey_t
mkkey(gnutls_pk_algorithm_t pk, unsigned bits)
{
    gnutls_x509_privkey_t k;

    CHECK(gnutls_x509_privkey_init(&k));
    CHECK(gnutls_x509_privkey_generate(k, pk, bits, 0));
    return k;
}

/* A certificate for key valid from from to until; self-signed when issuer
 * is NULL; with an extended key usage of purpose (an OID) unless it is
 * NULL. */
static gnutls_x509_crt_t
mkcert_span(gnutls_x509_privkey_t key, const char *dn, int ca,
            gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key,
            unsigned char serial, const char *purpose, time_t from,
            time_t until)
{
    gnutls_x509_crt_t c;
    unsigned char ser[3] = { 0x00, 0x9a, serial };
    const char *errp;

    CHECK(gnutls_x509_crt_init(&c));
    CHECK(gnutls_x509_crt_set_key(c, key));
    CHECK(gnutls_x509_crt_set_version(c, 3));
    CHECK(gnutls_x509_crt_set_serial(c, ser, sizeof(ser)));
    CHECK(gnutls_x509_crt_set_dn(c, dn, &errp));
    CHECK(gnutls_x509_crt_set_activation_time(c, from));
    CHECK(gnutls_x509_crt_set_expiration_time(c, until));
    CHECK(gnutls_x509_crt_set_basic_constraints(c, ca, -1));
    if (ca) {
        CHECK(gnutls_x509_crt_set_key_usage(c, GNUTLS_KEY_KEY_CERT_SIGN
                                            | GNUTLS_KEY_CRL_SIGN));
    }
    if (purpose != NULL) {
        CHECK(gnutls_x509_crt_set_key_purpose_oid(c, purpose, 0));
    }
    CHECK(gnutls_x509_crt_sign2(c, issuer ? issuer : c,
                                issuer_key ? issuer_key : key,
                                GNUTLS_DIG_SHA256, 0));
    return c;
}

/* The same, valid from an hour ago for a day. */
static gnutls_x509_crt_t
mkcert_eku(gnutls_x509_privkey_t key, const char *dn, int ca,
           gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key,
           unsigned char serial, const char *purpose)
{
    time_t now = time(NULL);

    return mkcert_span(key, dn, ca, issuer, issuer_key, serial, purpose,
                       now - 3600, now + 86400);
}

/* A CRL from issuer (signed with issuer_key), issued at from and next due
 * at until, revoking revoked unless it is NULL; written to path, or added
 * at its end. */
static void
save_crl(const char *path, int append, gnutls_x509_crt_t issuer,
         gnutls_x509_privkey_t issuer_key, gnutls_x509_crt_t revoked,
         time_t from, time_t until)
{
    gnutls_x509_crl_t crl;
    gnutls_datum_t d;
    FILE *f;

    CHECK(gnutls_x509_crl_init(&crl));
    CHECK(gnutls_x509_crl_set_version(crl, 2));
    CHECK(gnutls_x509_crl_set_this_update(crl, from));
    CHECK(gnutls_x509_crl_set_next_update(crl, until));
    if (revoked != NULL) {
        CHECK(gnutls_x509_crl_set_crt(crl, revoked, from));
    }
    CHECK(gnutls_x509_crl_sign2(crl, issuer, issuer_key, GNUTLS_DIG_SHA256,
                                0));
    CHECK(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &d));
    f = fopen(path, append ? "ab" : "wb");
    if (f == NULL || fwrite(d.data, 1, d.size, f) != d.size) {
        printf("Bail out! cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
    gnutls_free(d.data);
    gnutls_x509_crl_deinit(crl);
}

/* A certificate without an extended key usage. */
static gnutls_x509_crt_t
mkcert(gnutls_x509_privkey_t key, const char *dn, int ca,
       gnutls_x509_crt_t issuer, gnutls_x509_privkey_t issuer_key,
       unsigned char serial)
{
    return mkcert_eku(key, dn, ca, issuer, issuer_key, serial, NULL);
}

/* Certificates one after the other in one PEM file (a chain). */
static void
save_certs(const char *path, gnutls_x509_crt_t a, gnutls_x509_crt_t b,
           gnutls_x509_crt_t c)
{
    gnutls_x509_crt_t v[3] = { a, b, c };
    gnutls_datum_t d;
    FILE *f = fopen(path, "wb");
    size_t i;

    if (f == NULL) {
        printf("Bail out! cannot write %s\n", path);
        exit(1);
    }
    for (i = 0; i < 3 && v[i] != NULL; i++) {
        CHECK(gnutls_x509_crt_export2(v[i], GNUTLS_X509_FMT_PEM, &d));
        if (fwrite(d.data, 1, d.size, f) != d.size) {
            printf("Bail out! cannot write %s\n", path);
            exit(1);
        }
        gnutls_free(d.data);
    }
    fclose(f);
}

static void
save_cert(gnutls_x509_crt_t c, const char *path)
{
    save_certs(path, c, NULL, NULL);
}

static void
save_key(gnutls_x509_privkey_t k, const char *path, const char *password)
{
    gnutls_datum_t d;

    if (password != NULL) {
        CHECK(gnutls_x509_privkey_export2_pkcs8(k, GNUTLS_X509_FMT_PEM,
                                                password,
                                                GNUTLS_PKCS_PBES2_AES_256,
                                                &d));
    } else {
        CHECK(gnutls_x509_privkey_export2(k, GNUTLS_X509_FMT_PEM, &d));
    }
    write_datum(path, &d);
}

#define P256 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1)

/* the files */
static const char *rsa_crt, *rsa_key, *ec_crt, *ec_key, *ca_crt, *cl_crt,
                  *cl_key, *self_crt, *self_key, *other_key, *enc_key,
                  *pw_good, *pw_bad, *dh_pem, *tk80, *tk48, *tk_bad,
                  *tk_other;
/* ca -> int -> icl (a client two steps from the root), srvcl (EKU
 * serverAuth only) and ekucl (EKU clientAuth), both issued by ca */
static const char *int_crt, *ca_int_crt, *icl_crt, *icl_chain, *icl_full,
                  *icl_key, *srvcl_crt, *srvcl_key, *ekucl_crt, *ekucl_key;
/* client certificates from ca out of their time (key cl_key), and CRL
 * files: ca's revoking client.pem; ca's past its next update; ca's not yet
 * issued; one with ca's name signed by another key; ca's and int's */
static const char *old_crt, *young_crt, *crl_revoking, *crl_stale,
                  *crl_young, *crl_forged, *crl_ca_int;

static void
make_files(void)
{
    gnutls_x509_privkey_t krsa, kec, kca, kcl, kself, kother, kint, kicl,
                          ksrvcl;
    gnutls_x509_crt_t crsa, cec, cca, ccl, cself, cint, cicl, csrvcl, cekucl,
                      cold, cyoung;
    time_t now = time(NULL);
    gnutls_dh_params_t dh;
    gnutls_datum_t d;
    unsigned char rnd[80];
    size_t i;

    krsa = mkkey(GNUTLS_PK_RSA, 2048);
    kec = mkkey(GNUTLS_PK_ECDSA, P256);
    kca = mkkey(GNUTLS_PK_ECDSA, P256);
    kcl = mkkey(GNUTLS_PK_ECDSA, P256);
    kself = mkkey(GNUTLS_PK_ECDSA, P256);
    kother = mkkey(GNUTLS_PK_ECDSA, P256);
    crsa = mkcert(krsa, "CN=mail.test", 0, NULL, NULL, 1);
    cec = mkcert(kec, "CN=mail.test", 0, NULL, NULL, 2);
    cca = mkcert(kca, "CN=Test CA,O=Postern", 1, NULL, NULL, 3);
    ccl = mkcert(kcl, "CN=client,O=Postern Test", 0, cca, kca, 4);
    cself = mkcert(kself, "CN=stranger", 0, NULL, NULL, 5);
    kint = mkkey(GNUTLS_PK_ECDSA, P256);
    kicl = mkkey(GNUTLS_PK_ECDSA, P256);
    ksrvcl = mkkey(GNUTLS_PK_ECDSA, P256);
    cint = mkcert(kint, "CN=Test Intermediate,O=Postern", 1, cca, kca, 6);
    cicl = mkcert(kicl, "CN=deep client,O=Postern Test", 0, cint, kint, 7);
    csrvcl = mkcert_eku(ksrvcl, "CN=server,O=Postern Test", 0, cca, kca, 8,
                        GNUTLS_KP_TLS_WWW_SERVER);
    cekucl = mkcert_eku(ksrvcl, "CN=eku client,O=Postern Test", 0, cca, kca,
                        9, GNUTLS_KP_TLS_WWW_CLIENT);
    int_crt = tpath("int.pem");      save_cert(cint, int_crt);
    ca_int_crt = tpath("ca-int.pem");
    save_certs(ca_int_crt, cca, cint, NULL);
    icl_crt = tpath("icl.pem");      save_cert(cicl, icl_crt);
    icl_chain = tpath("icl-int.pem");
    save_certs(icl_chain, cicl, cint, NULL);
    icl_full = tpath("icl-int-ca.pem");
    save_certs(icl_full, cicl, cint, cca);
    icl_key = tpath("icl.key");      save_key(kicl, icl_key, NULL);
    srvcl_crt = tpath("srvcl.pem");  save_cert(csrvcl, srvcl_crt);
    srvcl_key = tpath("srvcl.key");  save_key(ksrvcl, srvcl_key, NULL);
    ekucl_crt = tpath("ekucl.pem");  save_cert(cekucl, ekucl_crt);
    ekucl_key = srvcl_key;
    cold = mkcert_span(kcl, "CN=old client,O=Postern Test", 0, cca, kca, 10,
                       NULL, now - 3 * 86400, now - 86400);
    cyoung = mkcert_span(kcl, "CN=young client,O=Postern Test", 0, cca, kca,
                         11, NULL, now + 86400, now + 3 * 86400);
    old_crt = tpath("old.pem");      save_cert(cold, old_crt);
    young_crt = tpath("young.pem");  save_cert(cyoung, young_crt);
    crl_revoking = tpath("revoking.crl");
    save_crl(crl_revoking, 0, cca, kca, ccl, now - 3600, now + 86400);
    crl_stale = tpath("stale.crl");
    save_crl(crl_stale, 0, cca, kca, NULL, now - 3 * 86400, now - 86400);
    crl_young = tpath("young.crl");
    save_crl(crl_young, 0, cca, kca, NULL, now + 86400, now + 3 * 86400);
    crl_forged = tpath("forged.crl");
    save_crl(crl_forged, 0, cca, kother, NULL, now - 3600, now + 86400);
    crl_ca_int = tpath("ca-int.crl");
    save_crl(crl_ca_int, 0, cca, kca, NULL, now - 3600, now + 86400);
    save_crl(crl_ca_int, 1, cint, kint, NULL, now - 3600, now + 86400);

    rsa_crt = tpath("rsa.pem");   save_cert(crsa, rsa_crt);
    rsa_key = tpath("rsa.key");   save_key(krsa, rsa_key, NULL);
    ec_crt = tpath("ec.pem");     save_cert(cec, ec_crt);
    ec_key = tpath("ec.key");     save_key(kec, ec_key, NULL);
    ca_crt = tpath("ca.pem");     save_cert(cca, ca_crt);
    cl_crt = tpath("client.pem"); save_cert(ccl, cl_crt);
    cl_key = tpath("client.key"); save_key(kcl, cl_key, NULL);
    self_crt = tpath("self.pem"); save_cert(cself, self_crt);
    self_key = tpath("self.key"); save_key(kself, self_key, NULL);
    other_key = tpath("other.key"); save_key(kother, other_key, NULL);
    enc_key = tpath("enc.key");   save_key(kec, enc_key, "s3cret");
    pw_good = tpath("pw-good");
    write_file(pw_good, "wrong\r\ns3cret\n", 14);
    pw_bad = tpath("pw-bad");
    write_file(pw_bad, "nope\n", 5);

    CHECK(gnutls_dh_params_init(&dh));
    CHECK(gnutls_dh_params_import_raw2(dh, &gnutls_ffdhe_2048_group_prime,
                                       &gnutls_ffdhe_2048_group_generator,
                                       gnutls_ffdhe_2048_key_bits));
    CHECK(gnutls_dh_params_export2_pkcs3(dh, GNUTLS_X509_FMT_PEM, &d));
    dh_pem = tpath("dh.pem");
    write_datum(dh_pem, &d);
    gnutls_dh_params_deinit(dh);

    for (i = 0; i < sizeof(rnd); i++) {
        rnd[i] = (unsigned char)(i * 7 + 3);
    }
    tk80 = tpath("ticket80.key"); write_file(tk80, rnd, 80);
    tk48 = tpath("ticket48.key"); write_file(tk48, rnd, 48);
    tk_bad = tpath("ticket10.key"); write_file(tk_bad, rnd, 10);
    rnd[0] ^= 1;
    tk_other = tpath("ticket-other.key"); write_file(tk_other, rnd, 80);

    gnutls_x509_crt_deinit(crsa);
    gnutls_x509_crt_deinit(cec);
    gnutls_x509_crt_deinit(cca);
    gnutls_x509_crt_deinit(ccl);
    gnutls_x509_crt_deinit(cself);
    gnutls_x509_crt_deinit(cint);
    gnutls_x509_crt_deinit(cicl);
    gnutls_x509_crt_deinit(csrvcl);
    gnutls_x509_crt_deinit(cekucl);
    gnutls_x509_crt_deinit(cold);
    gnutls_x509_crt_deinit(cyoung);
    gnutls_x509_privkey_deinit(krsa);
    gnutls_x509_privkey_deinit(kec);
    gnutls_x509_privkey_deinit(kca);
    gnutls_x509_privkey_deinit(kcl);
    gnutls_x509_privkey_deinit(kself);
    gnutls_x509_privkey_deinit(kother);
    gnutls_x509_privkey_deinit(kint);
    gnutls_x509_privkey_deinit(kicl);
    gnutls_x509_privkey_deinit(ksrvcl);
}

/* A server_conf as the loader would leave it, TLS on. */
static char *certs2[2], *keys2[2], *protos[2] = { "TLSv1.2", "TLSv1.3" };
static char *cache_tok[1], *tk_files[2];

static void
sc_default(struct server_conf *sc, size_t index)
{
    memset(sc, 0, sizeof(*sc));
    sc->line = 10 + (int)index;
    sc->index = index;
    sc->protocol = PROTO_IMAP;
    sc->ssl = 1;
    certs2[0] = (char *)rsa_crt;
    certs2[1] = (char *)ec_crt;
    keys2[0] = (char *)rsa_key;
    keys2[1] = (char *)ec_key;
    sc->ssl_certificate.n = 2;
    sc->ssl_certificate.v = certs2;
    sc->ssl_certificate_key.n = 2;
    sc->ssl_certificate_key.v = keys2;
    sc->ssl_protocols.n = 2;
    sc->ssl_protocols.v = protos;
    sc->ssl_ciphers = "HIGH:!aNULL:!MD5";
    sc->ssl_ecdh_curve = "auto";
    sc->ssl_session_timeout = 300;
    sc->ssl_session_tickets = 1;
    sc->ssl_verify_client = VERIFY_OFF;
    sc->ssl_verify_depth = 1;
}

/* ---- the server end ---- */

struct srv {
    struct server_conf *sc;
    int fd;
    int deadline_ms;
    int rc, err_no;
    char err[256];
    char first[8], rest[16];
    size_t pending;
    int info_rc;
    struct tls_info info;
    int bye_rc, bye2_rc;
};

/* Blocking-with-deadline read through tls_recv. */
static ssize_t
srv_read(struct conn *c, void *buf, size_t len)
{
    struct timeval tv;
    ssize_t n;
    int dir, i;
    fd_set fds;

    for (i = 0; i < 500; i++) {
        n = tls_recv(c, buf, len, &dir);
        if (n >= 0 || errno != EAGAIN) {
            return n;
        }
        FD_ZERO(&fds);
        FD_SET(c->fd, &fds);
        tv.tv_sec = 0;
        tv.tv_usec = 10000;
        (void)select(c->fd + 1, dir ? NULL : &fds, dir ? &fds : NULL, NULL,
                     &tv);
    }
    return -1;
}

static void *
srv_main(void *arg)
{
    struct srv *s = arg;
    struct conn c;
    ssize_t n;
    int dir, i;

    memset(&c, 0, sizeof(c));
    c.fd = s->fd;
    c.deadline = clock_now() + (s->deadline_ms ? s->deadline_ms : 5000);
    s->rc = tls_accept(&c, s->sc, s->err, sizeof(s->err));
    s->err_no = errno;
    if (s->rc < 0) {
        goto out;
    }
    n = srv_read(&c, s->first, 5);
    if (n == 5) {
        s->pending = tls_pending(&c);
        n = srv_read(&c, s->rest, sizeof(s->rest) - 1);
        if (n > 0) {
            s->rest[n] = '\0';
        }
    }
    for (i = 0; i < 500; i++) {
        n = tls_send(&c, "pong\n", 5, &dir);
        if (n == 5 || (n < 0 && errno != EAGAIN)) {
            break;
        }
        usleep(1000);                   /* same buffer again, as required */
    }
    s->info_rc = tls_get_info(&c, &s->info);
    s->bye_rc = tls_bye(&c);
    s->bye2_rc = tls_bye(&c);           /* as conn_close after a half-close */
out:
    tls_free(&c);
    close(s->fd);
    return NULL;
}

/* ---- the client end ---- */

struct cli {
    const char *prio;
    const char *alpn;
    const char *cert, *key;
    gnutls_datum_t *resume;             /* in */
    gnutls_datum_t saved;               /* out: session data */
    int hs, resumed, eof;
    ssize_t after_eof;                  /* raw bytes after close_notify */
    char reply[16];
    char alpn_sel[16];
};

static int
cli_run(int fd, struct cli *cl)
{
    gnutls_certificate_credentials_t cred;
    gnutls_session_t s;
    gnutls_datum_t proto, sel;
    size_t got = 0;
    ssize_t n;
    int i;

    CHECK(gnutls_certificate_allocate_credentials(&cred));
    if (cl->cert != NULL) {
        CHECK(gnutls_certificate_set_x509_key_file(cred, cl->cert, cl->key,
                                                   GNUTLS_X509_FMT_PEM));
    }
    CHECK(gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL));
    CHECK(gnutls_priority_set_direct(s, cl->prio ? cl->prio : "NORMAL",
                                     NULL));
    CHECK(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred));
    if (cl->alpn != NULL) {
        proto.data = (unsigned char *)cl->alpn;
        proto.size = (unsigned)strlen(cl->alpn);
        CHECK(gnutls_alpn_set_protocols(s, &proto, 1, 0));
    }
    if (cl->resume != NULL && cl->resume->size > 0) {
        CHECK(gnutls_session_set_data(s, cl->resume->data,
                                      cl->resume->size));
    }
    gnutls_transport_set_int(s, fd);
    do {
        cl->hs = gnutls_handshake(s);
    } while (cl->hs < 0 && !gnutls_error_is_fatal(cl->hs));
    if (cl->hs < 0) {
        goto out;
    }
    cl->resumed = gnutls_session_is_resumed(s);
    if (gnutls_alpn_get_selected_protocol(s, &sel) == 0
        && sel.size < sizeof(cl->alpn_sel)) {
        memcpy(cl->alpn_sel, sel.data, sel.size);
    }
    n = gnutls_record_send(s, "hello world", 11);
    for (i = 0; i < 20 && got < 5; i++) {
        n = gnutls_record_recv(s, cl->reply + got, 5 - got);
        if (n > 0) {
            got += (size_t)n;
        } else if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED) {
            break;
        }
    }
    for (i = 0; i < 20; i++) {
        char b[8];

        n = gnutls_record_recv(s, b, sizeof(b));
        if (n == 0) {
            cl->eof = 1;
            /* a second close_notify would arrive before the server's FIN */
            cl->after_eof = recv(fd, b, sizeof(b), 0);
            break;
        }
        if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED) {
            break;
        }
    }
    gnutls_session_get_data2(s, &cl->saved);
out:
    gnutls_deinit(s);
    gnutls_certificate_free_credentials(cred);
    return cl->hs;
}

/* One connection: server thread + client; fills srv and cli. */
static void
run_pair(struct server_conf *sc, struct srv *sv, struct cli *cl)
{
    struct timeval tv = { 5, 0 };
    pthread_t th;
    int sp[2];

    memset(sv, 0, sizeof(*sv));
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    CHECK(fcntl(sp[0], F_SETFL, O_NONBLOCK));
    setsockopt(sp[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(sp[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sv->sc = sc;
    sv->fd = sp[0];
    if (pthread_create(&th, NULL, srv_main, sv) != 0) {
        printf("Bail out! pthread_create\n");
        exit(1);
    }
    cli_run(sp[1], cl);
    close(sp[1]);
    pthread_join(th, NULL);
}

static void
cli_reset(struct cli *cl)
{
    if (cl->saved.data != NULL) {
        gnutls_free(cl->saved.data);
    }
    memset(cl, 0, sizeof(*cl));
}

/* Conf init must fail with err containing want. */
static void
init_fails(struct server_conf *sc, const char *want, const char *what)
{
    char err[512] = "";
    int rc = tls_server_conf_init(sc, err, sizeof(err));

    ok(rc < 0 && strstr(err, want) != NULL, "%s: %s", what, err);
    if (rc == 0) {
        tls_server_conf_free(sc);
    }
}

static void
test_conf_errors(void)
{
    struct server_conf sc;
    char *bad_keys[2];
    char *ticket1[1];
    char err[512] = "";

    sc_default(&sc, 0);
    bad_keys[0] = (char *)rsa_key;
    bad_keys[1] = (char *)other_key;
    sc.ssl_certificate_key.v = bad_keys;
    init_fails(&sc, other_key, "key not matching its certificate names it");

    sc_default(&sc, 0);
    bad_keys[0] = (char *)rsa_key;
    bad_keys[1] = (char *)enc_key;
    sc.ssl_certificate_key.v = bad_keys;
    init_fails(&sc, enc_key, "encrypted key without ssl_password_file");
    sc.ssl_password_file = (char *)pw_bad;
    init_fails(&sc, pw_bad, "wrong ssl_password_file names the file");
    sc.ssl_password_file = (char *)pw_good;
    is_int(tls_server_conf_init(&sc, err, sizeof(err)), 0,
           "second line of ssl_password_file decrypts the key");
    tls_server_conf_free(&sc);
    sc.ssl_password_file = (char *)tpath("no-such-pw");
    init_fails(&sc, "no-such-pw", "missing password file named");

    sc_default(&sc, 0);
    certs2[0] = (char *)tpath("missing.pem");
    init_fails(&sc, "missing.pem: cannot open", "missing certificate named");
    sc_default(&sc, 0);
    certs2[0] = (char *)rsa_key;
    init_fails(&sc, rsa_key, "a key given as certificate named");

    sc_default(&sc, 0);
    sc.ssl_ecdh_curve = "X25519:brainpoolP512r1";
    init_fails(&sc, "\"brainpoolP512r1\"", "unknown ssl_ecdh_curve named");
    sc.ssl_ecdh_curve = "X25519:prime256v1:secp384r1";
    is_int(tls_server_conf_init(&sc, err, sizeof(err)), 0,
           "X25519:prime256v1:secp384r1 accepted");
    tls_server_conf_free(&sc);

    sc_default(&sc, 0);
    sc.ssl_ciphers = "HIGH:NOPE";
    init_fails(&sc, "NOPE", "untranslatable ssl_ciphers");
    sc.ssl_priority = "NORMAL:+BOGUS-THING";
    init_fails(&sc, "BOGUS-THING", "bad ssl_priority with position");
    sc.ssl_priority = "SECURE256:-VERS-TLS1.0";
    is_int(tls_server_conf_init(&sc, err, sizeof(err)), 0,
           "raw ssl_priority accepted");
    tls_server_conf_free(&sc);

    sc_default(&sc, 0);
    sc.ssl_dhparam = (char *)dh_pem;
    is_int(tls_server_conf_init(&sc, err, sizeof(err)), 0,
           "ssl_dhparam loads");
    tls_server_conf_free(&sc);
    sc.ssl_dhparam = (char *)rsa_crt;
    init_fails(&sc, rsa_crt, "ssl_dhparam that is no DH file named");

    /* ssl_crl: a file with no CRL refuses the configuration, as NGINX */
    sc_default(&sc, 0);
    sc.ssl_verify_client = VERIFY_ON;
    sc.ssl_client_certificate = (char *)ca_crt;
    sc.ssl_crl = (char *)ca_crt;
    init_fails(&sc, "ssl_crl: ", "a certificate given as ssl_crl");
    init_fails(&sc, ca_crt, "... names the file");
    sc.ssl_crl = (char *)pw_bad;
    init_fails(&sc, "no CRL could be read", "a text file given as ssl_crl");
    sc.ssl_crl = (char *)tpath("no-such.crl");
    init_fails(&sc, "no-such.crl: cannot open", "missing ssl_crl named");

    sc_default(&sc, 0);
    sc.ssl_verify_client = VERIFY_ON;
    init_fails(&sc, "ssl_client_certificate", "verify on without a CA");
    sc.ssl_client_certificate = (char *)rsa_key;
    init_fails(&sc, rsa_key, "CA file that holds no certificate named");

    sc_default(&sc, 0);
    ticket1[0] = (char *)tk_bad;
    sc.ssl_session_ticket_key.n = 1;
    sc.ssl_session_ticket_key.v = ticket1;
    init_fails(&sc, tk_bad, "ticket key of a bad size named");
    ticket1[0] = (char *)tk48;
    is_int(tls_server_conf_init(&sc, err, sizeof(err)), 0,
           "48-byte ticket key accepted");
    tls_server_conf_free(&sc);

    sc_default(&sc, 0);
    sc.ssl_certificate.n = 0;
    init_fails(&sc, "ssl_certificate", "TLS without a certificate");
    sc_default(&sc, 0);
    sc.ssl = 0;
    is_int(tls_server_conf_init(&sc, err, sizeof(err)), 0,
           "no TLS needed: nothing built");
    ok(sc.tls_data == NULL, "tls_data stays NULL");
    sc_default(&sc, 0);
    cache_tok[0] = "builtin:abc";
    sc.ssl_session_cache.n = 1;
    sc.ssl_session_cache.v = cache_tok;
    init_fails(&sc, "builtin:abc", "bad ssl_session_cache");
}

static void
test_handshakes(void)
{
    struct server_conf sc;
    struct srv sv;
    struct cli cl;
    char err[512] = "";

    sc_default(&sc, 0);
    if (!ok(tls_server_conf_init(&sc, err, sizeof(err)) == 0,
            "RSA + ECDSA server conf: %s", err)) {
        return;
    }

    memset(&cl, 0, sizeof(cl));
    cl.prio = "NORMAL:-CIPHER-ALL:+AES-256-GCM";
    run_pair(&sc, &sv, &cl);
    is_int(cl.hs, 0, "TLS 1.3 handshake (client)");
    is_int(sv.rc, 0, "tls_accept ok %s", sv.err);
    is_str(sv.first, "hello", "tls_recv of 5 bytes");
    is_int(sv.pending, 6, "tls_pending holds the rest of the record");
    is_str(sv.rest, " world", "rest read");
    is_str(cl.reply, "pong\n", "tls_send reached the client");
    ok(cl.eof, "client saw close_notify after tls_bye");
    is_int(sv.bye_rc, 0, "tls_bye ok");
    is_int(sv.bye2_rc, 0, "a second tls_bye is a no-op");
    is_int((int)cl.after_eof, 0, "one close_notify: the FIN follows it");
    is_int(sv.info_rc, 0, "tls_get_info ok");
    is_str(sv.info.protocol, "TLSv1.3", "Auth-SSL-Protocol TLSv1.3");
    is_str(sv.info.cipher, "TLS_AES_256_GCM_SHA384", "Auth-SSL-Cipher IANA");
    is_str(sv.info.verify, "NONE", "no client cert: NONE");
    ok(sv.info.subject == NULL && sv.info.cert_pem == NULL, "no subject");
    tls_info_free(&sv.info);
    cli_reset(&cl);

    cl.prio = "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:"
              "-KX-ALL:+ECDHE-RSA";
    run_pair(&sc, &sv, &cl);
    is_int(sv.rc, 0, "TLS 1.2 ECDHE-RSA handshake %s", sv.err);
    is_str(sv.info.protocol, "TLSv1.2", "Auth-SSL-Protocol TLSv1.2");
    is_str(sv.info.cipher, "ECDHE-RSA-AES128-GCM-SHA256",
           "Auth-SSL-Cipher in OpenSSL's name");
    tls_info_free(&sv.info);
    cli_reset(&cl);

    cl.prio = "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+ECDHE-ECDSA:"
              "-CIPHER-ALL:+AES-256-GCM";
    run_pair(&sc, &sv, &cl);
    is_int(sv.rc, 0, "TLS 1.2 ECDHE-ECDSA uses the ECDSA pair %s", sv.err);
    is_str(sv.info.cipher, "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDSA cipher");
    tls_info_free(&sv.info);
    cli_reset(&cl);

    cl.prio = "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-CBC:"
              "-MAC-ALL:+SHA1:-KX-ALL:+RSA";
    run_pair(&sc, &sv, &cl);
    is_str(sv.info.cipher, "AES256-SHA", "RSA kx cipher named AES256-SHA");
    tls_info_free(&sv.info);
    cli_reset(&cl);

    /* ALPN */
    cl.alpn = "h2";
    run_pair(&sc, &sv, &cl);
    ok(cl.hs < 0, "client offering only h2 is refused (%s)",
       gnutls_strerror(cl.hs));
    ok(sv.rc < 0 && strstr(sv.err, "ALPN") != NULL, "server says: %s",
       sv.err);
    cli_reset(&cl);
    cl.alpn = "imap";
    run_pair(&sc, &sv, &cl);
    is_int(sv.rc, 0, "client offering imap accepted");
    is_str(cl.alpn_sel, "imap", "imap selected");
    tls_info_free(&sv.info);
    cli_reset(&cl);

    /* a client that never speaks: the deadline ends it */
    {
        struct timeval t0, t1;
        pthread_t th;
        int sp[2];
        long ms;

        memset(&sv, 0, sizeof(sv));
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
        CHECK(fcntl(sp[0], F_SETFL, O_NONBLOCK));
        sv.sc = &sc;
        sv.fd = sp[0];
        sv.deadline_ms = 200;
        gettimeofday(&t0, NULL);
        pthread_create(&th, NULL, srv_main, &sv);
        pthread_join(th, NULL);
        gettimeofday(&t1, NULL);
        close(sp[1]);
        ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
        ok(sv.rc < 0 && sv.err_no == ETIMEDOUT, "silent client: %s", sv.err);
        /* ETIMEDOUT says the deadline ended it (the peer never speaks);
         * the time is checked only for "not before the deadline" */
        ok(ms >= 150, "not before the deadline (%ld ms)", ms);
    }
    tls_server_conf_free(&sc);
}

/* ---- a close_notify that meets a full socket ---- */

struct full_cli {
    int fd;
    int go;                             /* read end: the server says "read" */
    int hs;
    long long bytes;                    /* application bytes read */
    int end;                            /* last record_recv: 0 close_notify */
    ssize_t after;                      /* recv() after it: 0, the FIN */
};

/* The client: handshake, wait for the word, then read to the end. */
static void *
full_cli_main(void *arg)
{
    struct full_cli *fc = arg;
    gnutls_certificate_credentials_t cred;
    gnutls_session_t s;
    struct pollfd pfd = { .fd = fc->go, .events = POLLIN };
    static char buf[65536];
    ssize_t n;

    CHECK(gnutls_certificate_allocate_credentials(&cred));
    CHECK(gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL));
    CHECK(gnutls_priority_set_direct(s, "NORMAL", NULL));
    CHECK(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred));
    gnutls_transport_set_int(s, fc->fd);
    do {
        fc->hs = gnutls_handshake(s);
    } while (fc->hs < 0 && !gnutls_error_is_fatal(fc->hs));
    if (fc->hs < 0 || poll(&pfd, 1, 5000) != 1) {
        goto out;
    }
    for (;;) {
        n = gnutls_record_recv(s, buf, sizeof(buf));
        if (n > 0) {
            fc->bytes += n;
            continue;
        }
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            continue;
        }
        fc->end = (int)n;
        break;
    }
    if (fc->end == 0) {
        fc->after = recv(fc->fd, buf, sizeof(buf), 0);
    }
out:
    gnutls_deinit(s);
    gnutls_certificate_free_credentials(cred);
    return NULL;
}

/* conn_shutdown_write() on a TLS connection whose socket is full: the
 * close_notify waits (EAGAIN), the FIN does not overtake it, and a later
 * call sends both; tls_bye() then stays a no-op. */
static void
test_bye_waits_for_room(void)
{
    struct server_conf sc;
    struct full_cli fc;
    struct conn c;
    struct timeval tv = { 5, 0 };
    static char data[16384];
    struct pollfd pfd;
    pthread_t th;
    char err[512] = "";
    int sp[2], go[2], small = 4096, rc, e, i;
    long long sent = 0;

    sc_default(&sc, 0);
    if (!ok(tls_server_conf_init(&sc, err, sizeof(err)) == 0,
            "server conf for the full-socket test: %s", err)) {
        return;
    }
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    CHECK(pipe(go));
    CHECK(fcntl(sp[0], F_SETFL, O_NONBLOCK));
    setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(sp[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(sp[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    memset(&fc, 0, sizeof(fc));
    fc.fd = sp[1];
    fc.go = go[0];
    fc.end = 1;
    if (pthread_create(&th, NULL, full_cli_main, &fc) != 0) {
        printf("Bail out! pthread_create\n");
        exit(1);
    }
    memset(&c, 0, sizeof(c));
    c.fd = sp[0];
    c.deadline = clock_now() + 5000;
    rc = tls_accept(&c, &sc, err, sizeof(err));
    is_int(rc, 0, "full socket: handshake %s", err);
    /* the client does not read yet: fill the socket */
    for (i = 0; rc == 0 && i < 10000; i++) {
        int dir;
        ssize_t n = tls_send(&c, data, sizeof(data), &dir);

        if (n < 0) {
            break;
        }
        sent += n;
    }
    ok(rc == 0 && errno == EAGAIN, "the socket is full after %lld bytes",
       sent);
    rc = conn_shutdown_write(&c);
    e = errno;
    is_int(rc, -1, "full socket: conn_shutdown_write waits");
    is_int(e, EAGAIN, "... with EAGAIN");
    /* let the client read; the close_notify goes, then the FIN */
    if (write(go[1], "r", 1) != 1) {
        printf("Bail out! write to the pipe\n");
        exit(1);
    }
    for (i = 0; i < 500 && rc != 0 && e == EAGAIN; i++) {
        pfd.fd = sp[0];
        pfd.events = POLLOUT;
        (void)poll(&pfd, 1, 10);
        rc = conn_shutdown_write(&c);
        e = errno;
    }
    is_int(rc, 0, "conn_shutdown_write done once there is room");
    is_int(tls_bye(&c), 0, "tls_bye afterwards is a no-op");
    pthread_join(th, NULL);
    is_int(fc.hs, 0, "full socket: client handshake");
    is_int(fc.end, 0, "the client got close_notify, not a truncation");
    ok(fc.bytes >= sent, "every record before it arrived (%lld of %lld)",
       fc.bytes, sent);
    is_int((int)fc.after, 0, "the FIN came after the close_notify");
    conn_close(&c);
    close(sp[1]);
    close(go[0]);
    close(go[1]);
    tls_server_conf_free(&sc);
}

static void
test_client_certs(void)
{
    struct server_conf sc;
    struct srv sv;
    struct cli cl;
    char err[512] = "";

    sc_default(&sc, 0);
    sc.ssl_verify_client = VERIFY_ON;
    sc.ssl_client_certificate = (char *)ca_crt;
    if (!ok(tls_server_conf_init(&sc, err, sizeof(err)) == 0,
            "verify on conf: %s", err)) {
        return;
    }
    memset(&cl, 0, sizeof(cl));
    cl.cert = cl_crt;
    cl.key = cl_key;
    run_pair(&sc, &sv, &cl);
    is_int(sv.rc, 0, "client cert accepted %s", sv.err);
    is_str(sv.info.verify, "SUCCESS", "verify SUCCESS");
    ok(sv.info.verified, "verified flag");
    is_str(sv.info.subject, "CN=client,O=Postern Test",
           "subject in RFC 2253 order");
    is_str(sv.info.issuer, "CN=Test CA,O=Postern", "issuer");
    is_str(sv.info.serial, "9A04", "serial hex without sign byte");
    ok(sv.info.fingerprint != NULL && strlen(sv.info.fingerprint) == 40
       && strspn(sv.info.fingerprint, "0123456789abcdef") == 40,
       "SHA-1 fingerprint, lowercase hex");
    ok(sv.info.cert_pem != NULL
       && strncmp(sv.info.cert_pem, "-----BEGIN CERTIFICATE-----", 27) == 0,
       "certificate PEM");
    tls_info_free(&sv.info);
    cli_reset(&cl);

    run_pair(&sc, &sv, &cl);
    ok(sv.rc < 0 && sv.err_no == EACCES
       && strstr(sv.err, "no required SSL certificate") != NULL,
       "verify on, no cert: %s", sv.err);
    cli_reset(&cl);

    tls_server_conf_free(&sc);

    /* ssl_trusted_certificate: no CA names sent, so a GnuTLS client
     * offers any certificate it has */
    sc.ssl_client_certificate = NULL;
    sc.ssl_trusted_certificate = (char *)ca_crt;
    CHECK(tls_server_conf_init(&sc, err, sizeof(err)));
    cl.cert = self_crt;
    cl.key = self_key;
    run_pair(&sc, &sv, &cl);
    ok(sv.rc < 0 && sv.err_no == EPERM
       && strstr(sv.err, "verify error") != NULL, "stranger's cert: %s",
       sv.err);
    cli_reset(&cl);
    cl.cert = cl_crt;
    cl.key = cl_key;
    run_pair(&sc, &sv, &cl);
    is_str(sv.info.verify, "SUCCESS", "trusted_certificate verifies");
    tls_info_free(&sv.info);
    cli_reset(&cl);
    tls_server_conf_free(&sc);
    sc.ssl_trusted_certificate = NULL;

    sc.ssl_verify_client = VERIFY_OPTIONAL_NO_CA;
    sc.ssl_client_certificate = NULL;
    CHECK(tls_server_conf_init(&sc, err, sizeof(err)));
    cl.cert = self_crt;
    cl.key = self_key;
    run_pair(&sc, &sv, &cl);
    is_int(sv.rc, 0, "optional_no_ca takes a stranger's cert");
    ok(sv.info.verify != NULL && strncmp(sv.info.verify, "FAILED:", 7) == 0,
       "verify says %s", sv.info.verify ? sv.info.verify : "(null)");
    is_str(sv.info.subject, "CN=stranger", "its subject");
    tls_info_free(&sv.info);
    cli_reset(&cl);
    tls_server_conf_free(&sc);
}

/* One client certificate (file of a chain) against sc: its verify text,
 * or the error when the handshake was refused. */
static void
cert_case(struct server_conf *sc, const char *crt, const char *key,
          const char *want, const char *what)
{
    struct srv sv;
    struct cli cl;
    const char *got;

    memset(&cl, 0, sizeof(cl));
    cl.cert = crt;
    cl.key = key;
    run_pair(sc, &sv, &cl);
    got = sv.rc == 0 ? sv.info.verify : sv.err;
    ok(got != NULL && strstr(got, want) != NULL
       && (sv.rc == 0 || sv.err_no == EPERM), "%s: %s", what,
       got ? got : "(null)");
    if (sv.rc == 0) {
        tls_info_free(&sv.info);
    }
    cli_reset(&cl);
}

/* sc with verify on, depth and client CA file, initialised. */
static int
verify_conf(struct server_conf *sc, int depth, const char *cafile)
{
    char err[512] = "";

    sc_default(sc, 0);
    sc->ssl_verify_client = VERIFY_ON;
    sc->ssl_verify_depth = depth;
    sc->ssl_client_certificate = (char *)cafile;
    return ok(tls_server_conf_init(sc, err, sizeof(err)) == 0,
              "verify depth %d conf: %s", depth, err);
}

/* The client purpose (EKU) and ssl_verify_depth on the chain built up to
 * the root: intermediates from the CA file count, a sent root does not. */
static void
test_client_chains(void)
{
    struct server_conf sc;

    if (verify_conf(&sc, 1, ca_crt)) {
        cert_case(&sc, srvcl_crt, srvcl_key,
                  "verify error: (26:unsuitable certificate purpose)",
                  "serverAuth-only certificate refused");
        cert_case(&sc, ekucl_crt, ekucl_key, "SUCCESS",
                  "clientAuth certificate accepted");
        cert_case(&sc, icl_chain, icl_key, "SUCCESS",
                  "depth 1: leaf + intermediate");
        cert_case(&sc, icl_full, icl_key, "SUCCESS",
                  "depth 1: leaf + intermediate + root");
        tls_server_conf_free(&sc);
    }
    if (verify_conf(&sc, 1, ca_int_crt)) {
        cert_case(&sc, icl_crt, icl_key, "SUCCESS",
                  "depth 1: leaf, intermediate in the CA file");
        tls_server_conf_free(&sc);
    }
    if (verify_conf(&sc, 0, ca_crt)) {
        cert_case(&sc, cl_crt, cl_key, "SUCCESS",
                  "depth 0: issued by the CA");
        cert_case(&sc, icl_chain, icl_key,
                  "verify error: (22:certificate chain too long)",
                  "depth 0: leaf + intermediate refused");
        cert_case(&sc, icl_full, icl_key,
                  "verify error: (22:certificate chain too long)",
                  "depth 0: leaf + intermediate + root refused");
        tls_server_conf_free(&sc);
    }
    if (verify_conf(&sc, 0, ca_int_crt)) {
        cert_case(&sc, icl_crt, icl_key,
                  "verify error: (22:certificate chain too long)",
                  "depth 0: intermediate from the CA file counts");
        cert_case(&sc, cl_crt, cl_key, "SUCCESS",
                  "depth 0, two CAs in the file: issued by the root");
        tls_server_conf_free(&sc);
    }
    /* the intermediate alone is trusted: the chain ends there, whatever
     * the client sends above it */
    if (verify_conf(&sc, 0, int_crt)) {
        cert_case(&sc, icl_crt, icl_key, "SUCCESS",
                  "depth 0, intermediate trusted: leaf alone");
        cert_case(&sc, icl_full, icl_key, "SUCCESS",
                  "depth 0, intermediate trusted: leaf + intermediate + root");
        tls_server_conf_free(&sc);
    }
}

/* cert against a server with verify on, depth 1, the CA file and the CRL
 * file crl: the verify text or the error contains want. */
static void
crl_case(const char *crl, const char *crt, const char *key, const char *want,
         const char *what)
{
    struct server_conf sc;
    char err[512] = "";

    sc_default(&sc, 0);
    sc.ssl_verify_client = VERIFY_ON;
    sc.ssl_verify_depth = 1;
    sc.ssl_client_certificate = (char *)ca_crt;
    sc.ssl_crl = (char *)crl;
    if (ok(tls_server_conf_init(&sc, err, sizeof(err)) == 0, "%s: conf: %s",
           what, err)) {
        cert_case(&sc, crt, key, want, what);
        tls_server_conf_free(&sc);
    }
}

/* A failed verification is logged with OpenSSL 3.0's code and words, as
 * NGINX logs it, and told to the auth service in the same words. */
static void
test_verify_reasons(void)
{
    struct server_conf sc;
    char err[512] = "";

    if (verify_conf(&sc, 1, ca_crt)) {
        cert_case(&sc, old_crt, cl_key,
                  "verify error: (10:certificate has expired)",
                  "expired certificate refused");
        cert_case(&sc, young_crt, cl_key,
                  "verify error: (9:certificate is not yet valid)",
                  "certificate not yet valid refused");
        cert_case(&sc, srvcl_crt, srvcl_key,
                  "verify error: (26:unsuitable certificate purpose)",
                  "serverAuth-only certificate: code 26");
        tls_server_conf_free(&sc);
    }
    if (verify_conf(&sc, 0, ca_crt)) {
        cert_case(&sc, icl_chain, icl_key,
                  "verify error: (22:certificate chain too long)",
                  "chain too long: code 22");
        tls_server_conf_free(&sc);
    }
    /* no CA names sent (ssl_trusted_certificate), so that the test client
     * offers a certificate the CA did not issue */
    sc_default(&sc, 0);
    sc.ssl_verify_client = VERIFY_ON;
    sc.ssl_trusted_certificate = (char *)ca_crt;
    if (ok(tls_server_conf_init(&sc, err, sizeof(err)) == 0,
           "trusted conf: %s", err)) {
        cert_case(&sc, self_crt, self_key,
                  "verify error: (18:self-signed certificate)",
                  "self-signed stranger refused");
        tls_server_conf_free(&sc);
    }
    sc_default(&sc, 0);
    sc.ssl_verify_client = VERIFY_OPTIONAL_NO_CA;
    sc.ssl_trusted_certificate = (char *)ca_crt;
    if (ok(tls_server_conf_init(&sc, err, sizeof(err)) == 0,
           "optional_no_ca conf: %s", err)) {
        cert_case(&sc, old_crt, cl_key, "FAILED:certificate has expired",
                  "optional_no_ca: the auth service has the words");
        tls_server_conf_free(&sc);
    }
    /* ssl_crl: every certificate of the path needs a current CRL from its
     * issuer, signed by it, that does not list it */
    crl_case(crl_revoking, cl_crt, cl_key, "(23:certificate revoked)",
             "revoked certificate refused");
    crl_case(crl_revoking, ekucl_crt, ekucl_key, "SUCCESS",
             "a certificate the CRL does not list accepted");
    crl_case(crl_stale, cl_crt, cl_key, "(12:CRL has expired)",
             "a CRL past its next update refuses");
    crl_case(crl_young, cl_crt, cl_key, "(11:CRL is not yet valid)",
             "a CRL not yet issued refuses");
    crl_case(crl_forged, cl_crt, cl_key, "(8:CRL signature failure)",
             "a CRL not signed by the issuer refuses");
    crl_case(crl_revoking, icl_chain, icl_key,
             "(3:unable to get certificate CRL)",
             "no CRL from the intermediate refuses");
    crl_case(crl_ca_int, icl_chain, icl_key, "SUCCESS",
             "CRLs from the root and the intermediate: accepted");
}

static void
test_resumption(void)
{
    struct server_conf a, b;
    struct srv sv;
    struct cli cl;
    gnutls_datum_t saved;
    char err[512] = "";
    const char *tls12 = "NORMAL:-VERS-ALL:+VERS-TLS1.2";

    /* builtin cache, no tickets, TLS 1.2 */
    sc_default(&a, 0);
    cache_tok[0] = "builtin:100";
    a.ssl_session_cache.n = 1;
    a.ssl_session_cache.v = cache_tok;
    a.ssl_session_tickets = 0;
    CHECK(tls_server_conf_init(&a, err, sizeof(err)));
    memset(&cl, 0, sizeof(cl));
    cl.prio = tls12;
    run_pair(&a, &sv, &cl);
    tls_info_free(&sv.info);
    ok(cl.hs == 0 && !cl.resumed, "first TLS 1.2 handshake is full");
    saved = cl.saved;
    cl.saved.data = NULL;
    cli_reset(&cl);
    cl.prio = tls12;
    cl.resume = &saved;
    run_pair(&a, &sv, &cl);
    tls_info_free(&sv.info);
    ok(cl.hs == 0 && cl.resumed, "builtin cache resumes the session");
    cli_reset(&cl);
    tls_server_conf_free(&a);

    /* off: no resumption */
    sc_default(&a, 0);
    cache_tok[0] = "off";
    a.ssl_session_cache.n = 1;
    a.ssl_session_cache.v = cache_tok;
    a.ssl_session_tickets = 0;
    CHECK(tls_server_conf_init(&a, err, sizeof(err)));
    cl.prio = tls12;
    cl.resume = &saved;
    run_pair(&a, &sv, &cl);
    tls_info_free(&sv.info);
    ok(cl.hs == 0 && !cl.resumed, "ssl_session_cache off: no resumption");
    cli_reset(&cl);
    tls_server_conf_free(&a);
    gnutls_free(saved.data);

    /* shared cache, two servers: bound to the issuing one */
    sc_default(&a, 0);
    cache_tok[0] = "builtin shared:MAIL:1m";
    a.ssl_session_cache.n = 1;
    a.ssl_session_cache.v = cache_tok;
    a.ssl_session_tickets = 0;
    CHECK(tls_server_conf_init(&a, err, sizeof(err)));
    sc_default(&b, 1);
    cache_tok[0] = "shared:MAIL:1m";
    b.ssl_session_cache.n = 1;
    b.ssl_session_cache.v = cache_tok;
    b.ssl_session_tickets = 0;
    CHECK(tls_server_conf_init(&b, err, sizeof(err)));
    cl.prio = tls12;
    run_pair(&a, &sv, &cl);
    tls_info_free(&sv.info);
    saved = cl.saved;
    cl.saved.data = NULL;
    cli_reset(&cl);
    cl.prio = tls12;
    cl.resume = &saved;
    run_pair(&b, &sv, &cl);
    tls_info_free(&sv.info);
    ok(cl.hs == 0 && !cl.resumed,
       "a session of server 0 does not resume on server 1");
    cli_reset(&cl);
    cl.prio = tls12;
    cl.resume = &saved;
    run_pair(&a, &sv, &cl);
    tls_info_free(&sv.info);
    ok(cl.hs == 0 && cl.resumed, "but resumes on server 0");
    cli_reset(&cl);
    gnutls_free(saved.data);
    tls_server_conf_free(&a);
    tls_server_conf_free(&b);

    /* tickets, TLS 1.3: the same key file on two instances */
    sc_default(&a, 0);
    tk_files[0] = (char *)tk80;
    a.ssl_session_ticket_key.n = 1;
    a.ssl_session_ticket_key.v = tk_files;
    CHECK(tls_server_conf_init(&a, err, sizeof(err)));
    sc_default(&b, 0);
    b.ssl_session_ticket_key.n = 1;
    b.ssl_session_ticket_key.v = tk_files;
    CHECK(tls_server_conf_init(&b, err, sizeof(err)));
    run_pair(&a, &sv, &cl);
    tls_info_free(&sv.info);
    ok(cl.hs == 0 && cl.saved.size > 0, "TLS 1.3 ticket received");
    saved = cl.saved;
    cl.saved.data = NULL;
    cli_reset(&cl);
    cl.resume = &saved;
    run_pair(&b, &sv, &cl);
    tls_info_free(&sv.info);
    ok(cl.hs == 0 && cl.resumed,
       "a ticket of instance A resumes on instance B (same key file)");
    cli_reset(&cl);
    tls_server_conf_free(&b);

    tk_files[0] = (char *)tk_other;
    sc_default(&b, 0);
    b.ssl_session_ticket_key.n = 1;
    b.ssl_session_ticket_key.v = tk_files;
    CHECK(tls_server_conf_init(&b, err, sizeof(err)));
    cl.resume = &saved;
    run_pair(&b, &sv, &cl);
    tls_info_free(&sv.info);
    ok(cl.hs == 0 && !cl.resumed, "another key file: no resumption");
    cli_reset(&cl);
    tls_server_conf_free(&b);

    tk_files[0] = (char *)tk80;
    sc_default(&b, 1);
    b.ssl_session_ticket_key.n = 1;
    b.ssl_session_ticket_key.v = tk_files;
    CHECK(tls_server_conf_init(&b, err, sizeof(err)));
    cl.resume = &saved;
    run_pair(&b, &sv, &cl);
    tls_info_free(&sv.info);
    ok(cl.hs == 0 && !cl.resumed,
       "same key file, another servers entry: no resumption");
    cli_reset(&cl);
    tls_server_conf_free(&b);
    gnutls_free(saved.data);
    tls_server_conf_free(&a);

    /* tickets off: nothing to resume with on TLS 1.3 */
    sc_default(&a, 0);
    a.ssl_session_tickets = 0;
    CHECK(tls_server_conf_init(&a, err, sizeof(err)));
    run_pair(&a, &sv, &cl);
    tls_info_free(&sv.info);
    saved = cl.saved;
    cl.saved.data = NULL;
    cli_reset(&cl);
    cl.resume = &saved;
    run_pair(&a, &sv, &cl);
    tls_info_free(&sv.info);
    ok(cl.hs == 0 && !cl.resumed, "ssl_session_tickets off: no resumption");
    cli_reset(&cl);
    gnutls_free(saved.data);
    tls_server_conf_free(&a);
}

/* Many threads on one shared cache: runs clean under ThreadSanitizer. */
static void *
hammer(void *arg)
{
    struct tls_cache_set *set = arg;
    unsigned char id[16], data[100];
    gnutls_datum_t key = { id, sizeof(id) }, val = { data, sizeof(data) };
    gnutls_datum_t r;
    int i;

    memset(id, 0, sizeof(id));
    memset(data, 'x', sizeof(data));
    for (i = 0; i < 3000; i++) {
        id[0] = (unsigned char)(i % 97);
        id[1] = (unsigned char)(i % 89);
        if (i % 3 == 0) {
            tls_cache_store(set, key, val);
        } else if (i % 3 == 1) {
            r = tls_cache_retrieve(set, key);
            gnutls_free(r.data);
        } else {
            tls_cache_remove(set, key);
        }
    }
    return NULL;
}

static void
test_cache(void)
{
    struct tls_cache_set set, other;
    struct strlist l;
    char *tok[2];
    char err[256];
    unsigned char idbuf[32], data[600];
    gnutls_datum_t key = { idbuf, 32 }, val = { data, sizeof(data) }, r;
    size_t entries, bytes;
    int i;

    memset(data, 'd', sizeof(data));
    memset(idbuf, 1, sizeof(idbuf));
    l.v = tok;
    l.n = 1;

    tok[0] = "builtin:2";
    CHECK(tls_cache_set_init(&set, &l, 0, 300, err, sizeof(err)));
    for (i = 0; i < 3; i++) {
        idbuf[0] = (unsigned char)i;
        is_int(tls_cache_store(&set, key, val), 0, "store %d", i);
    }
    tls_cache_stats(set.v[0], &entries, &bytes);
    is_int(entries, 2, "builtin:2 holds two sessions");
    idbuf[0] = 0;
    r = tls_cache_retrieve(&set, key);
    ok(r.data == NULL, "the oldest was evicted");
    idbuf[0] = 2;
    r = tls_cache_retrieve(&set, key);
    ok(r.size == sizeof(data) && memcmp(r.data, data, r.size) == 0,
       "the newest is there");
    gnutls_free(r.data);
    is_int(tls_cache_remove(&set, key), 0, "remove");
    r = tls_cache_retrieve(&set, key);
    ok(r.data == NULL, "gone after remove");
    tls_cache_set_free(&set);

    /* shared: the same NAME is one cache; bytes bound; server binding */
    tok[0] = "shared:T:2k";
    CHECK(tls_cache_set_init(&set, &l, 0, 300, err, sizeof(err)));
    CHECK(tls_cache_set_init(&other, &l, 1, 300, err, sizeof(err)));
    ok(set.v[0] == other.v[0], "shared:T is one cache for two servers");
    for (i = 0; i < 5; i++) {
        idbuf[0] = (unsigned char)i;
        tls_cache_store(&set, key, val);
    }
    tls_cache_stats(set.v[0], &entries, &bytes);
    ok(bytes <= 2048 && entries >= 1 && entries < 5,
       "bounded by 2k: %zu entries, %zu bytes", entries, bytes);
    idbuf[0] = 4;
    r = tls_cache_retrieve(&other, key);
    ok(r.data == NULL, "server 1 does not see server 0's session");
    r = tls_cache_retrieve(&set, key);
    ok(r.data != NULL, "server 0 does");
    gnutls_free(r.data);
    tls_cache_set_free(&other);
    tls_cache_set_free(&set);

    {
        struct tls_cache_set sets[4];
        pthread_t th[4];
        size_t k;

        tok[0] = "shared:H:8k";
        for (k = 0; k < 4; k++) {
            CHECK(tls_cache_set_init(&sets[k], &l, k % 2, 300, err,
                                     sizeof(err)));
        }
        for (k = 0; k < 4; k++) {
            pthread_create(&th[k], NULL, hammer, &sets[k]);
        }
        for (k = 0; k < 4; k++) {
            pthread_join(th[k], NULL);
        }
        tls_cache_stats(sets[0].v[0], &entries, &bytes);
        ok(bytes <= 8192, "4 threads on one shared cache: %zu entries, "
           "%zu bytes", entries, bytes);
        for (k = 0; k < 4; k++) {
            tls_cache_set_free(&sets[k]);
        }
    }

    /* timeout */
    tok[0] = "builtin";
    CHECK(tls_cache_set_init(&set, &l, 0, 1, err, sizeof(err)));
    tls_cache_store(&set, key, val);
    r = tls_cache_retrieve(&set, key);
    ok(r.data != NULL, "fresh entry found");
    gnutls_free(r.data);
    usleep(1100 * 1000);
    r = tls_cache_retrieve(&set, key);
    ok(r.data == NULL, "expired after ssl_session_timeout");
    tls_cache_set_free(&set);

    /* syntax */
    tok[0] = "none";
    is_int(tls_cache_set_init(&set, &l, 0, 300, err, sizeof(err)), 0, "none");
    is_int(set.n, 0, "none stores nothing");
    tok[0] = "off builtin";
    ok(tls_cache_set_init(&set, &l, 0, 300, err, sizeof(err)) < 0,
       "off with a cache: %s", err);
    tok[0] = "shared:X";
    ok(tls_cache_set_init(&set, &l, 0, 300, err, sizeof(err)) < 0
       && strstr(err, "shared:X"), "shared without size: %s", err);
    tok[0] = "shared:X:0";
    ok(tls_cache_set_init(&set, &l, 0, 300, err, sizeof(err)) < 0,
       "shared size 0: %s", err);
    tok[0] = "bogus";
    ok(tls_cache_set_init(&set, &l, 0, 300, err, sizeof(err)) < 0
       && strstr(err, "bogus"), "unknown token: %s", err);
    tok[0] = "builtin:10";
    tok[1] = "shared:A:1m";
    l.n = 2;
    is_int(tls_cache_set_init(&set, &l, 0, 300, err, sizeof(err)), 0,
           "a list of tokens");
    is_int(set.n, 2, "two caches");
    tls_cache_set_free(&set);
}

/* GnuTLS's DN text as NGINX (OpenSSL's RFC 2253 form) shows it. */
static void
test_dn(void)
{
    static const struct {
        const char *in, *want, *what;
    } rows[] = {
        { "CN=alice,O=Example,C=US", "CN=alice,O=Example,C=US",
          "plain ASCII unchanged" },
        { "EMAIL=a@example.test,CN=alice,O=Acme\\, Inc.,C=DE",
          "emailAddress=a@example.test,CN=alice,O=Acme\\, Inc.,C=DE",
          "EMAIL is emailAddress, escapes kept" },
        { "givenName=John,surName=Smith,OU=IT+title=Boss",
          "GN=John,SN=Smith,OU=IT+title=Boss",
          "givenName, surName, a multi-valued RDN" },
        { "CN=J\xc3\xbcrgen #1,L=M\xc3\xbcnchen",
          "CN=J\\C3\\BCrgen #1,L=M\\C3\\BCnchen", "8-bit bytes in hex" },
        { "CN=EMAIL=x,O=surName", "CN=EMAIL=x,O=surName",
          "names renamed only where a type stands" },
        { "CN=a\\+EMAIL=b", "CN=a\\+EMAIL=b", "an escaped + ends nothing" },
        { "1.2.3.4=#0403616263,CN=x", "1.2.3.4=#0403616263,CN=x",
          "a hex value unchanged" },
        { "", "", "empty" },
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char *got = tls_dn_as_openssl(rows[i].in);

        is_str(got, rows[i].want, "DN: %s", rows[i].what);
        free(got);
    }
}

int
main(void)
{
    int i;

    if (tls_global_init() < 0) {
        printf("Bail out! tls_global_init\n");
        return 1;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/postern-test-tls-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    make_files();
    test_dn();
    test_conf_errors();
    test_handshakes();
    test_bye_waits_for_room();
    test_client_certs();
    test_client_chains();
    test_verify_reasons();
    test_resumption();
    test_cache();
    for (i = 0; i < npaths; i++) {
        unlink(path_buf[i]);
    }
    rmdir(tmpdir);
    tls_global_deinit();
    return tap_done();
}
