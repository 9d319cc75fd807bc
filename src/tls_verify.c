/*
 * tls_verify.c - the client certificate: a server's trust anchors and CRLs
 * (ssl_client_certificate, ssl_trusted_certificate, ssl_crl) and the check
 * after the handshake, judged as NGINX with OpenSSL judges it.
 *
 * GnuTLS checks the signatures, times and purpose of the chain.  What
 * OpenSSL also checks is done here on the path OpenSSL would build: from
 * the client's certificate through its issuers, taken from the trust
 * anchors first and then from what the client sent, up to a self-signed
 * certificate or one whose issuer is unknown (the anchor).
 * - ssl_verify_depth: every certificate between the two ends of the path
 *   is an intermediate, wherever it came from (GnuTLS stops its own path
 *   at the first trusted certificate and keeps no count).
 * - ssl_crl: as NGINX sets X509_V_FLAG_CRL_CHECK_ALL, every certificate
 *   of the path needs a CRL from its issuer that is signed by it and
 *   current (issued, and not past its next update), and must not be on
 *   it.  A missing or stale CRL refuses the client: revocation cannot be
 *   known.  The anchor is checked too when it is self-signed (its own CRL
 *   covers it); a trusted certificate whose issuer is not known ends the
 *   path and nothing can vouch for a CRL about it.
 * A failure gets OpenSSL 3.0's code and words, which NGINX logs as
 * "(code:words)" and sends the auth service as "FAILED:words";
 * administrators search their logs for these.
 *
 * Untrusted input: the certificates the client sent (GnuTLS parses them;
 * at most CHAIN_MAX are read).  Locks: none; a struct tls_verify is
 * immutable once built and shared by every worker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "str.h"
#include "tls_int.h"

/* Most certificates of a client's chain read (GnuTLS's own default limit
 * on a verified chain); a path may add the anchors above them */
#define CHAIN_MAX 16
#define PATH_MAX_CERTS (CHAIN_MAX + 2)
/* a CRL file may list many certificates; it is read once, at load */
#define CRL_FILE_MAX (32 * 1024 * 1024)

/* A failed verification: OpenSSL 3.0's result code and words (3.0
 * renumbered some: an invalid CA is 79 there, 24 before). */
struct verify_fail {
    int code;
    const char *text;
};

static const struct verify_fail
    VF_UNSPECIFIED = { 1, "unspecified certificate verification error" },
    VF_NO_CRL = { 3, "unable to get certificate CRL" },
    VF_SIGNATURE = { 7, "certificate signature failure" },
    VF_CRL_SIGNATURE = { 8, "CRL signature failure" },
    VF_NOT_YET_VALID = { 9, "certificate is not yet valid" },
    VF_EXPIRED = { 10, "certificate has expired" },
    VF_CRL_NOT_YET_VALID = { 11, "CRL is not yet valid" },
    VF_CRL_EXPIRED = { 12, "CRL has expired" },
    VF_SELF_SIGNED = { 18, "self-signed certificate" },
    VF_SELF_SIGNED_IN_CHAIN = { 19, "self-signed certificate in certificate chain" },
    VF_NO_LOCAL_ISSUER = { 20, "unable to get local issuer certificate" },
    VF_NO_LEAF_ISSUER = { 21, "unable to verify the first certificate" },
    VF_CHAIN_TOO_LONG = { 22, "certificate chain too long" },
    VF_REVOKED = { 23, "certificate revoked" },
    VF_PURPOSE = { 26, "unsuitable certificate purpose" },
    VF_WEAK_DIGEST = { 68, "CA signature digest algorithm too weak" },
    VF_INVALID_CA = { 79, "invalid CA certificate" },
    VF_NONE = { 0, NULL };

/* The client's certificates and the path built from them. */
struct path {
    gnutls_x509_crt_t sent[CHAIN_MAX];
    unsigned nsent;
    gnutls_x509_crt_t c[PATH_MAX_CERTS];    /* c[0] = sent[0], the leaf */
    unsigned char owned[PATH_MAX_CERTS];    /* a trust list copy to free */
    unsigned n;
    int cut;                                /* stopped before its anchor */
};

/* ---- loading ---- */

/* The CRLs of path (ssl_crl) into v; 0 / -1 with err. */
static int
crls_load(struct tls_verify *v, const char *path, char *err, size_t errlen)
{
    gnutls_datum_t d;
    int ret;

    if (tls_read_file(path, CRL_FILE_MAX, &d, err, errlen) < 0) {
        return -1;
    }
    ret = gnutls_x509_crl_list_import2(&v->crls, &v->ncrls, &d,
                                       GNUTLS_X509_FMT_PEM, 0);
    tls_datum_wipe(&d);
    if (ret < 0 || v->ncrls == 0) {
        snprintf(err, errlen, "%s: no CRL could be read (%s)", path,
                 ret < 0 ? gnutls_strerror(ret) : "empty");
        v->crls = NULL;
        v->ncrls = 0;
        return -1;
    }
    return 0;
}

int
tls_verify_init(struct tls_verify *v, gnutls_certificate_credentials_t cred,
                const struct server_conf *sc, char *err, size_t errlen)
{
    const char *files[2] = { sc->ssl_client_certificate,
                             sc->ssl_trusted_certificate };
    int ret, i;

    memset(v, 0, sizeof(*v));
    v->mode = sc->ssl_verify_client;
    v->depth = sc->ssl_verify_depth;        /* 0: issued by a trust anchor */
    v->send_ca_names = sc->ssl_client_certificate != NULL;
    for (i = 0; i < 2; i++) {
        if (files[i] == NULL) {
            continue;
        }
        ret = gnutls_certificate_set_x509_trust_file(cred, files[i],
                                                     GNUTLS_X509_FMT_PEM);
        if (ret <= 0) {
            snprintf(err, errlen, "%s: %s: no CA certificate could be read "
                     "(%s)", i == 0 ? "ssl_client_certificate"
                     : "ssl_trusted_certificate", files[i],
                     ret < 0 ? gnutls_strerror(ret) : "empty");
            return -1;
        }
    }
    gnutls_certificate_get_trust_list(cred, &v->trust);
    if (sc->ssl_crl != NULL && crls_load(v, sc->ssl_crl, err, errlen) < 0) {
        char msg[512];

        str_lcpy(msg, err, sizeof(msg));
        snprintf(err, errlen, "ssl_crl: %s", msg);
        return -1;
    }
    if ((v->mode == VERIFY_ON || v->mode == VERIFY_OPTIONAL)
        && files[0] == NULL && files[1] == NULL) {
        snprintf(err, errlen, "ssl_verify_client: no ssl_client_certificate "
                 "or ssl_trusted_certificate for server at line %d",
                 sc->line);
        tls_verify_free(v);
        return -1;
    }
    return 0;
}

void
tls_verify_free(struct tls_verify *v)
{
    for (unsigned i = 0; i < v->ncrls; i++) {
        gnutls_x509_crl_deinit(v->crls[i]);
    }
    gnutls_free(v->crls);
    v->crls = NULL;
    v->ncrls = 0;
}

/* ---- the path ---- */

/* The issuer of cur among the certificates the client sent, or NULL. */
static gnutls_x509_crt_t
sent_issuer(const struct path *p, gnutls_x509_crt_t cur)
{
    for (unsigned i = 1; i < p->nsent; i++) {
        if (p->sent[i] != cur
            && gnutls_x509_crt_check_issuer(cur, p->sent[i])) {
            return p->sent[i];
        }
    }
    return NULL;
}

static int
self_signed(gnutls_x509_crt_t c)
{
    return gnutls_x509_crt_check_issuer(c, c) != 0;
}

static void
path_free(struct path *p)
{
    for (unsigned i = 0; i < p->n; i++) {
        if (p->owned[i]) {
            gnutls_x509_crt_deinit(p->c[i]);
        }
    }
    for (unsigned i = 0; i < p->nsent; i++) {
        gnutls_x509_crt_deinit(p->sent[i]);
    }
    p->n = p->nsent = 0;
}

/* Read the certificates the client sent into p->sent; 0, or -1 when one
 * cannot be read (path_free() all the same). */
static int
sent_load(struct path *p, const gnutls_datum_t *peers, unsigned npeers)
{
    memset(p, 0, sizeof(*p));
    for (unsigned i = 0; i < npeers && i < CHAIN_MAX; i++) {
        if (gnutls_x509_crt_init(&p->sent[i]) < 0) {
            return -1;
        }
        p->nsent++;
        if (gnutls_x509_crt_import(p->sent[i], &peers[i],
                                   GNUTLS_X509_FMT_DER) < 0) {
            return -1;
        }
    }
    return p->nsent > 0 ? 0 : -1;
}

/* Build the path from the leaf, at most max certificates long (p->cut when
 * it had to stop there). */
static void
path_build(struct path *p, gnutls_x509_trust_list_t trust, unsigned max)
{
    gnutls_x509_crt_t cur = p->sent[0], next;
    int next_owned;

    if (max > PATH_MAX_CERTS) {
        max = PATH_MAX_CERTS;
    }
    p->c[0] = cur;
    p->n = 1;
    while (!self_signed(cur)) {
        /* a copy: the trust list is shared by every worker */
        next_owned = gnutls_x509_trust_list_get_issuer(trust, cur, &next,
                                                       GNUTLS_TL_GET_COPY)
                     == 0;
        if (!next_owned) {
            /* above a trusted certificate no sent one counts: it is the
             * anchor when its issuer is not trusted too (as GnuTLS's path
             * and OpenSSL's trusted-first search end there) */
            next = p->owned[p->n - 1] ? NULL : sent_issuer(p, cur);
        }
        if (next == NULL) {
            break;                      /* cur is the anchor */
        }
        if (p->n == max) {
            if (next_owned) {
                gnutls_x509_crt_deinit(next);
            }
            p->cut = 1;
            break;
        }
        p->c[p->n] = next;
        p->owned[p->n] = (unsigned char)next_owned;
        p->n++;
        cur = next;
    }
}

/* ---- the checks ---- */

/* Why a client chain leads to no trust anchor, as OpenSSL says it (GnuTLS
 * says only "signer not found"): where the certificates the client sent
 * lead, followed from its own through their issuers among them.  A
 * self-signed one alone, a self-signed root above it, its own certificate
 * with no issuer sent, or an issuer sent whose own issuer is unknown. */
static struct verify_fail
untrusted_reason(const struct path *p)
{
    gnutls_x509_crt_t top = p->sent[0], up;

    for (unsigned steps = 0; steps < p->nsent && !self_signed(top)
         && (up = sent_issuer(p, top)) != NULL; steps++) {
        top = up;
    }
    if (self_signed(top)) {
        return top == p->sent[0] ? VF_SELF_SIGNED : VF_SELF_SIGNED_IN_CHAIN;
    }
    return top == p->sent[0] ? VF_NO_LEAF_ISSUER : VF_NO_LOCAL_ISSUER;
}

/* OpenSSL's result for a GnuTLS verification status. */
static struct verify_fail
status_reason(unsigned status, const struct path *p)
{
    if (status & GNUTLS_CERT_REVOKED) {
        return VF_REVOKED;
    }
    if (status & GNUTLS_CERT_EXPIRED) {
        return VF_EXPIRED;
    }
    if (status & GNUTLS_CERT_NOT_ACTIVATED) {
        return VF_NOT_YET_VALID;
    }
    if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
        return untrusted_reason(p);
    }
    if (status & GNUTLS_CERT_SIGNER_NOT_CA) {
        return VF_INVALID_CA;
    }
    if (status & GNUTLS_CERT_PURPOSE_MISMATCH) {
        return VF_PURPOSE;
    }
    if (status & GNUTLS_CERT_INSECURE_ALGORITHM) {
        return VF_WEAK_DIGEST;
    }
    if (status & GNUTLS_CERT_SIGNATURE_FAILURE) {
        return VF_SIGNATURE;
    }
    return VF_UNSPECIFIED;
}

/* cert against the CRLs from issuer: VF_NONE when one is signed by it,
 * current and does not list cert.  Otherwise the first CRL's problem, or
 * VF_NO_CRL when issuer has none (OpenSSL also takes the best CRL it has
 * and reports what is wrong with it). */
static struct verify_fail
crl_check(const struct tls_verify *v, gnutls_x509_crt_t cert,
          gnutls_x509_crt_t issuer, time_t now)
{
    struct verify_fail why = VF_NO_CRL;

    for (unsigned i = 0; i < v->ncrls; i++) {
        gnutls_x509_crl_t crl = v->crls[i];
        unsigned status = 0;
        time_t next;

        if (!gnutls_x509_crl_check_issuer(crl, issuer)) {
            continue;
        }
        if (gnutls_x509_crl_verify(crl, &issuer, 1, 0, &status) < 0
            || (status & (GNUTLS_CERT_SIGNATURE_FAILURE
                          | GNUTLS_CERT_SIGNER_NOT_FOUND
                          | GNUTLS_CERT_INSECURE_ALGORITHM))) {
            if (why.code == VF_NO_CRL.code) {
                why = VF_CRL_SIGNATURE;
            }
            continue;
        }
        next = gnutls_x509_crl_get_next_update(crl);
        if (gnutls_x509_crl_get_this_update(crl) > now) {
            if (why.code == VF_NO_CRL.code) {
                why = VF_CRL_NOT_YET_VALID;
            }
            continue;
        }
        if (next != (time_t)-1 && next < now) {
            if (why.code == VF_NO_CRL.code) {
                why = VF_CRL_EXPIRED;
            }
            continue;
        }
        return gnutls_x509_crt_check_revocation(cert, &crl, 1) == 1
               ? VF_REVOKED : VF_NONE;
    }
    return why;
}

/* Every certificate of the path against the CRLs (see the top). */
static struct verify_fail
path_crl_check(const struct tls_verify *v, const struct path *p)
{
    time_t now = time(NULL);

    for (unsigned i = 0; i < p->n; i++) {
        gnutls_x509_crt_t issuer = i + 1 < p->n ? p->c[i + 1]
                                   : self_signed(p->c[i]) ? p->c[i] : NULL;
        struct verify_fail why;

        if (issuer == NULL) {
            break;                      /* an anchor vouched for by no one */
        }
        why = crl_check(v, p->c[i], issuer, now);
        if (why.text != NULL) {
            return why;
        }
    }
    return VF_NONE;
}

int
tls_verify_peer(const struct tls_verify *v, gnutls_session_t s,
                char *verify, size_t verifylen, char *err, size_t errlen)
{
    /* as OpenSSL's ssl_client purpose: a certificate that names its uses
     * (extended key usage) must name TLS client authentication, so that a
     * server certificate from the same CA cannot log in as a user */
    gnutls_typed_vdata_st purpose = {
        GNUTLS_DT_KEY_PURPOSE_OID,
        (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT, 0
    };
    const gnutls_datum_t *peers;
    unsigned n = 0, status = 0;
    struct verify_fail why = VF_NONE;
    struct path p;
    int ret;

    str_lcpy(verify, "NONE", verifylen);
    if (v->mode == VERIFY_OFF) {
        return 0;
    }
    peers = gnutls_certificate_get_peers(s, &n);
    if (peers == NULL || n == 0) {
        if (v->mode == VERIFY_ON) {
            snprintf(err, errlen, "client sent no required SSL certificate");
            return -2;
        }
        return 0;
    }
    ret = gnutls_certificate_verify_peers(s, &purpose, 1, &status);
    if (sent_load(&p, peers, n) < 0) {
        why = (struct verify_fail){ VF_UNSPECIFIED.code,
                                    "cannot read the certificate chain" };
        goto out;
    }
    if (ret < 0) {
        /* GnuTLS could not verify at all: its words say why */
        why = (struct verify_fail){ VF_UNSPECIFIED.code, gnutls_strerror(ret) };
        goto out;
    }
    if (status != 0) {
        why = status_reason(status, &p);
        goto out;
    }
    /* the leaf, depth intermediates and the anchor; one more shows that
     * there are too many */
    path_build(&p, v->trust, (unsigned)v->depth + 3);
    if (p.cut || (p.n >= 2 && p.n - 2 > (unsigned)v->depth)) {
        why = VF_CHAIN_TOO_LONG;
        goto out;
    }
    if (v->ncrls > 0) {
        why = path_crl_check(v, &p);
    }

out:
    path_free(&p);
    if (why.text == NULL) {
        str_lcpy(verify, "SUCCESS", verifylen);
        return 0;
    }
    snprintf(verify, verifylen, "FAILED:%s", why.text);
    if (v->mode == VERIFY_OPTIONAL_NO_CA) {
        return 0;
    }
    snprintf(err, errlen, "client SSL certificate verify error: (%d:%s)",
             why.code, why.text);
    return -1;
}
