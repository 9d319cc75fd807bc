/*
 * tls_priority.c - OpenSSL cipher strings (`ssl_ciphers`) and protocol lists
 * (`ssl_protocols`) translated into a GnuTLS priority string.
 *
 * The translation runs OpenSSL's own rule algorithm (add, `-` delete, `!`
 * kill, `+` move to the end, `@STRENGTH`) over a table of the TLS 1.2 and
 * older suites that both libraries implement, then writes the ciphers, MACs
 * and key exchanges of the selected suites, in their order, into a GnuTLS
 * priority built on NORMAL.  GnuTLS enables every combination of those lists
 * that is a real suite, so a hand-picked list such as
 * "ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-SHA" may also enable
 * ECDHE-RSA-AES256-SHA: the set can be larger than OpenSSL's, never made of
 * algorithms the operator did not name.  Where such a combination is a
 * suite the string excludes (`!` or a final `-`), the load is refused: the
 * exclusion could not hold.
 *
 * TLS 1.3 suites are chosen as in OpenSSL, apart from the TLS 1.2 list:
 * OpenSSL's three defaults, or the TLS 1.3 suite names listed
 * (TLS_AES_256_GCM_SHA384, ...).  But GnuTLS keeps one cipher list for
 * both versions, so a TLS 1.3 cipher is also a TLS 1.2 cipher.  While TLS
 * 1.2 is on, TLS 1.3 therefore only gets ciphers the TLS 1.2 suites already
 * use: a default whose cipher the list does not select for TLS 1.2
 * (`!CHACHA20`, `!AES256`, or just not named) is left out of TLS 1.3 too;
 * when that leaves no default, TLS 1.3 is turned off and `warn` says so
 * (an older list such as "AES256-SHA" keeps loading, as it did in NGINX);
 * a TLS 1.3 name whose cipher TLS 1.2 does not use fails the load, since
 * what the operator asked for by name cannot be given.  The other way
 * round cannot be kept apart: a TLS 1.2 cipher that also makes a TLS 1.3
 * suite (AES-128-CCM, AES-128-CCM-8 under HIGH) enables that suite, and
 * TLS 1.3 names do not narrow TLS 1.3 below the TLS 1.2 ciphers.
 *
 * Input is configuration text (trusted), but the parser is bounded and pure:
 * no I/O, no global state, no locks.  The suite table is also used for the
 * Auth-SSL-Cipher name of a negotiated session.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/gnutls.h>

#include "str.h"
#include "tls.h"
#include "tls_int.h"

/* OpenSSL's algorithm classes, one bit each; an alias is a set per class. */
enum {
    K_RSA = 1u << 0, K_DHE = 1u << 1, K_ECDHE = 1u << 2,
    A_RSA = 1u << 0, A_DSS = 1u << 1, A_ECDSA = 1u << 2, A_NULL = 1u << 3,
    E_AES128 = 1u << 0, E_AES256 = 1u << 1, E_AES128GCM = 1u << 2,
    E_AES256GCM = 1u << 3, E_AES128CCM = 1u << 4, E_AES256CCM = 1u << 5,
    E_AES128CCM8 = 1u << 6, E_AES256CCM8 = 1u << 7, E_CHACHA20 = 1u << 8,
    E_CAMELLIA128 = 1u << 9, E_CAMELLIA256 = 1u << 10, E_3DES = 1u << 11,
    E_RC4 = 1u << 12, E_NULL = 1u << 13,
    M_MD5 = 1u << 0, M_SHA1 = 1u << 1, M_SHA256 = 1u << 2,
    M_SHA384 = 1u << 3, M_AEAD = 1u << 4,
    V_OLD = 1u << 0, V_TLS12 = 1u << 1,            /* lowest version */
    S_HIGH = 1u << 0, S_MEDIUM = 1u << 1, S_NONE = 1u << 2,
    S_NOTDEFAULT = 1u << 3                         /* COMPLEMENTOFDEFAULT */
};

#define E_AES (E_AES128 | E_AES256 | E_AES128GCM | E_AES256GCM | \
               E_AES128CCM | E_AES256CCM | E_AES128CCM8 | E_AES256CCM8)
#define E_ALL 0x3fffu

struct suite {
    const char *name;                  /* OpenSSL's name */
    gnutls_kx_algorithm_t kx;          /* GNUTLS_KX_UNKNOWN for TLS 1.3 */
    gnutls_cipher_algorithm_t cipher;
    gnutls_mac_algorithm_t mac;
};

#define S(n, k, c, m) { n, GNUTLS_KX_##k, GNUTLS_CIPHER_##c, GNUTLS_MAC_##m }

/* In OpenSSL's "ALL" order: the initial order of the rule algorithm. */
static const struct suite suites[] = {
    S("ECDHE-ECDSA-AES256-GCM-SHA384", ECDHE_ECDSA, AES_256_GCM, AEAD),
    S("ECDHE-RSA-AES256-GCM-SHA384", ECDHE_RSA, AES_256_GCM, AEAD),
    S("DHE-DSS-AES256-GCM-SHA384", DHE_DSS, AES_256_GCM, AEAD),
    S("DHE-RSA-AES256-GCM-SHA384", DHE_RSA, AES_256_GCM, AEAD),
    S("ECDHE-ECDSA-CHACHA20-POLY1305", ECDHE_ECDSA, CHACHA20_POLY1305, AEAD),
    S("ECDHE-RSA-CHACHA20-POLY1305", ECDHE_RSA, CHACHA20_POLY1305, AEAD),
    S("DHE-RSA-CHACHA20-POLY1305", DHE_RSA, CHACHA20_POLY1305, AEAD),
    S("ECDHE-ECDSA-AES256-CCM8", ECDHE_ECDSA, AES_256_CCM_8, AEAD),
    S("ECDHE-ECDSA-AES256-CCM", ECDHE_ECDSA, AES_256_CCM, AEAD),
    S("DHE-RSA-AES256-CCM8", DHE_RSA, AES_256_CCM_8, AEAD),
    S("DHE-RSA-AES256-CCM", DHE_RSA, AES_256_CCM, AEAD),
    S("ADH-AES256-GCM-SHA384", ANON_DH, AES_256_GCM, AEAD),
    S("ECDHE-ECDSA-AES128-GCM-SHA256", ECDHE_ECDSA, AES_128_GCM, AEAD),
    S("ECDHE-RSA-AES128-GCM-SHA256", ECDHE_RSA, AES_128_GCM, AEAD),
    S("DHE-DSS-AES128-GCM-SHA256", DHE_DSS, AES_128_GCM, AEAD),
    S("DHE-RSA-AES128-GCM-SHA256", DHE_RSA, AES_128_GCM, AEAD),
    S("ECDHE-ECDSA-AES128-CCM8", ECDHE_ECDSA, AES_128_CCM_8, AEAD),
    S("ECDHE-ECDSA-AES128-CCM", ECDHE_ECDSA, AES_128_CCM, AEAD),
    S("DHE-RSA-AES128-CCM8", DHE_RSA, AES_128_CCM_8, AEAD),
    S("DHE-RSA-AES128-CCM", DHE_RSA, AES_128_CCM, AEAD),
    S("ADH-AES128-GCM-SHA256", ANON_DH, AES_128_GCM, AEAD),
    S("ECDHE-ECDSA-AES256-SHA384", ECDHE_ECDSA, AES_256_CBC, SHA384),
    S("ECDHE-RSA-AES256-SHA384", ECDHE_RSA, AES_256_CBC, SHA384),
    S("DHE-RSA-AES256-SHA256", DHE_RSA, AES_256_CBC, SHA256),
    S("DHE-DSS-AES256-SHA256", DHE_DSS, AES_256_CBC, SHA256),
    S("ECDHE-ECDSA-CAMELLIA256-SHA384", ECDHE_ECDSA, CAMELLIA_256_CBC, SHA384),
    S("ECDHE-RSA-CAMELLIA256-SHA384", ECDHE_RSA, CAMELLIA_256_CBC, SHA384),
    S("DHE-RSA-CAMELLIA256-SHA256", DHE_RSA, CAMELLIA_256_CBC, SHA256),
    S("DHE-DSS-CAMELLIA256-SHA256", DHE_DSS, CAMELLIA_256_CBC, SHA256),
    S("ADH-AES256-SHA256", ANON_DH, AES_256_CBC, SHA256),
    S("ADH-CAMELLIA256-SHA256", ANON_DH, CAMELLIA_256_CBC, SHA256),
    S("ECDHE-ECDSA-AES128-SHA256", ECDHE_ECDSA, AES_128_CBC, SHA256),
    S("ECDHE-RSA-AES128-SHA256", ECDHE_RSA, AES_128_CBC, SHA256),
    S("DHE-RSA-AES128-SHA256", DHE_RSA, AES_128_CBC, SHA256),
    S("DHE-DSS-AES128-SHA256", DHE_DSS, AES_128_CBC, SHA256),
    S("ECDHE-ECDSA-CAMELLIA128-SHA256", ECDHE_ECDSA, CAMELLIA_128_CBC, SHA256),
    S("ECDHE-RSA-CAMELLIA128-SHA256", ECDHE_RSA, CAMELLIA_128_CBC, SHA256),
    S("DHE-RSA-CAMELLIA128-SHA256", DHE_RSA, CAMELLIA_128_CBC, SHA256),
    S("DHE-DSS-CAMELLIA128-SHA256", DHE_DSS, CAMELLIA_128_CBC, SHA256),
    S("ADH-AES128-SHA256", ANON_DH, AES_128_CBC, SHA256),
    S("ADH-CAMELLIA128-SHA256", ANON_DH, CAMELLIA_128_CBC, SHA256),
    S("ECDHE-ECDSA-AES256-SHA", ECDHE_ECDSA, AES_256_CBC, SHA1),
    S("ECDHE-RSA-AES256-SHA", ECDHE_RSA, AES_256_CBC, SHA1),
    S("DHE-RSA-AES256-SHA", DHE_RSA, AES_256_CBC, SHA1),
    S("DHE-DSS-AES256-SHA", DHE_DSS, AES_256_CBC, SHA1),
    S("DHE-RSA-CAMELLIA256-SHA", DHE_RSA, CAMELLIA_256_CBC, SHA1),
    S("DHE-DSS-CAMELLIA256-SHA", DHE_DSS, CAMELLIA_256_CBC, SHA1),
    S("AECDH-AES256-SHA", ANON_ECDH, AES_256_CBC, SHA1),
    S("ADH-AES256-SHA", ANON_DH, AES_256_CBC, SHA1),
    S("ADH-CAMELLIA256-SHA", ANON_DH, CAMELLIA_256_CBC, SHA1),
    S("ECDHE-ECDSA-AES128-SHA", ECDHE_ECDSA, AES_128_CBC, SHA1),
    S("ECDHE-RSA-AES128-SHA", ECDHE_RSA, AES_128_CBC, SHA1),
    S("DHE-RSA-AES128-SHA", DHE_RSA, AES_128_CBC, SHA1),
    S("DHE-DSS-AES128-SHA", DHE_DSS, AES_128_CBC, SHA1),
    S("DHE-RSA-CAMELLIA128-SHA", DHE_RSA, CAMELLIA_128_CBC, SHA1),
    S("DHE-DSS-CAMELLIA128-SHA", DHE_DSS, CAMELLIA_128_CBC, SHA1),
    S("AECDH-AES128-SHA", ANON_ECDH, AES_128_CBC, SHA1),
    S("ADH-AES128-SHA", ANON_DH, AES_128_CBC, SHA1),
    S("ADH-CAMELLIA128-SHA", ANON_DH, CAMELLIA_128_CBC, SHA1),
    S("AES256-GCM-SHA384", RSA, AES_256_GCM, AEAD),
    S("AES256-CCM8", RSA, AES_256_CCM_8, AEAD),
    S("AES256-CCM", RSA, AES_256_CCM, AEAD),
    S("AES128-GCM-SHA256", RSA, AES_128_GCM, AEAD),
    S("AES128-CCM8", RSA, AES_128_CCM_8, AEAD),
    S("AES128-CCM", RSA, AES_128_CCM, AEAD),
    S("AES256-SHA256", RSA, AES_256_CBC, SHA256),
    S("CAMELLIA256-SHA256", RSA, CAMELLIA_256_CBC, SHA256),
    S("AES128-SHA256", RSA, AES_128_CBC, SHA256),
    S("CAMELLIA128-SHA256", RSA, CAMELLIA_128_CBC, SHA256),
    S("AES256-SHA", RSA, AES_256_CBC, SHA1),
    S("CAMELLIA256-SHA", RSA, CAMELLIA_256_CBC, SHA1),
    S("AES128-SHA", RSA, AES_128_CBC, SHA1),
    S("CAMELLIA128-SHA", RSA, CAMELLIA_128_CBC, SHA1),
    S("ECDHE-ECDSA-DES-CBC3-SHA", ECDHE_ECDSA, 3DES_CBC, SHA1),
    S("ECDHE-RSA-DES-CBC3-SHA", ECDHE_RSA, 3DES_CBC, SHA1),
    S("EDH-RSA-DES-CBC3-SHA", DHE_RSA, 3DES_CBC, SHA1),
    S("EDH-DSS-DES-CBC3-SHA", DHE_DSS, 3DES_CBC, SHA1),
    S("AECDH-DES-CBC3-SHA", ANON_ECDH, 3DES_CBC, SHA1),
    S("ADH-DES-CBC3-SHA", ANON_DH, 3DES_CBC, SHA1),
    S("DES-CBC3-SHA", RSA, 3DES_CBC, SHA1),
    S("ECDHE-ECDSA-RC4-SHA", ECDHE_ECDSA, ARCFOUR_128, SHA1),
    S("ECDHE-RSA-RC4-SHA", ECDHE_RSA, ARCFOUR_128, SHA1),
    S("AECDH-RC4-SHA", ANON_ECDH, ARCFOUR_128, SHA1),
    S("ADH-RC4-MD5", ANON_DH, ARCFOUR_128, MD5),
    S("RC4-SHA", RSA, ARCFOUR_128, SHA1),
    S("RC4-MD5", RSA, ARCFOUR_128, MD5),
    S("ECDHE-ECDSA-NULL-SHA", ECDHE_ECDSA, NULL, SHA1),
    S("ECDHE-RSA-NULL-SHA", ECDHE_RSA, NULL, SHA1),
    S("AECDH-NULL-SHA", ANON_ECDH, NULL, SHA1),
    S("NULL-SHA256", RSA, NULL, SHA256),
    S("NULL-SHA", RSA, NULL, SHA1),
    S("NULL-MD5", RSA, NULL, MD5),
    /* TLS 1.3: chosen only by name */
    S("TLS_AES_256_GCM_SHA384", UNKNOWN, AES_256_GCM, AEAD),
    S("TLS_CHACHA20_POLY1305_SHA256", UNKNOWN, CHACHA20_POLY1305, AEAD),
    S("TLS_AES_128_GCM_SHA256", UNKNOWN, AES_128_GCM, AEAD),
    S("TLS_AES_128_CCM_SHA256", UNKNOWN, AES_128_CCM, AEAD),
    S("TLS_AES_128_CCM_8_SHA256", UNKNOWN, AES_128_CCM_8, AEAD),
};

#define NSUITES (sizeof(suites) / sizeof(suites[0]))

/* OpenSSL's default TLS 1.3 suites, kept when none is named. */
static const gnutls_cipher_algorithm_t tls13_default[] = {
    GNUTLS_CIPHER_AES_256_GCM, GNUTLS_CIPHER_CHACHA20_POLY1305,
    GNUTLS_CIPHER_AES_128_GCM
};

/* A suite's classes, derived from its GnuTLS algorithms. */
struct attrs {
    unsigned k, a, e, m, v, s;
    int bits;
    int tls13;
};

/* GnuTLS cipher -> OpenSSL encryption class and strength bits. */
static const struct {
    gnutls_cipher_algorithm_t cipher;
    unsigned e;
    int bits;
} cipher_classes[] = {
    { GNUTLS_CIPHER_AES_128_CBC, E_AES128, 128 },
    { GNUTLS_CIPHER_AES_256_CBC, E_AES256, 256 },
    { GNUTLS_CIPHER_AES_128_GCM, E_AES128GCM, 128 },
    { GNUTLS_CIPHER_AES_256_GCM, E_AES256GCM, 256 },
    { GNUTLS_CIPHER_AES_128_CCM, E_AES128CCM, 128 },
    { GNUTLS_CIPHER_AES_256_CCM, E_AES256CCM, 256 },
    { GNUTLS_CIPHER_AES_128_CCM_8, E_AES128CCM8, 128 },
    { GNUTLS_CIPHER_AES_256_CCM_8, E_AES256CCM8, 256 },
    { GNUTLS_CIPHER_CHACHA20_POLY1305, E_CHACHA20, 256 },
    { GNUTLS_CIPHER_CAMELLIA_128_CBC, E_CAMELLIA128, 128 },
    { GNUTLS_CIPHER_CAMELLIA_256_CBC, E_CAMELLIA256, 256 },
    { GNUTLS_CIPHER_3DES_CBC, E_3DES, 112 },
    { GNUTLS_CIPHER_ARCFOUR_128, E_RC4, 128 },
    { GNUTLS_CIPHER_NULL, E_NULL, 0 },
};

/* Fill the OpenSSL classes of suite i. */
static void
suite_attrs(size_t i, struct attrs *at)
{
    const struct suite *su = &suites[i];
    size_t j;

    memset(at, 0, sizeof(*at));
    at->tls13 = su->kx == GNUTLS_KX_UNKNOWN;
    switch (su->kx) {
    case GNUTLS_KX_RSA:         at->k = K_RSA;   at->a = A_RSA;   break;
    case GNUTLS_KX_DHE_RSA:     at->k = K_DHE;   at->a = A_RSA;   break;
    case GNUTLS_KX_DHE_DSS:     at->k = K_DHE;   at->a = A_DSS;   break;
    case GNUTLS_KX_ECDHE_RSA:   at->k = K_ECDHE; at->a = A_RSA;   break;
    case GNUTLS_KX_ECDHE_ECDSA: at->k = K_ECDHE; at->a = A_ECDSA; break;
    case GNUTLS_KX_ANON_DH:     at->k = K_DHE;   at->a = A_NULL;  break;
    case GNUTLS_KX_ANON_ECDH:   at->k = K_ECDHE; at->a = A_NULL;  break;
    default:                    break;
    }
    at->e = E_NULL;
    for (j = 0; j < sizeof(cipher_classes) / sizeof(cipher_classes[0]); j++) {
        if (cipher_classes[j].cipher == su->cipher) {
            at->e = cipher_classes[j].e;
            at->bits = cipher_classes[j].bits;
        }
    }
    switch (su->mac) {
    case GNUTLS_MAC_MD5:    at->m = M_MD5;    break;
    case GNUTLS_MAC_SHA1:   at->m = M_SHA1;   break;
    case GNUTLS_MAC_SHA256: at->m = M_SHA256; break;
    case GNUTLS_MAC_SHA384: at->m = M_SHA384; break;
    default:                at->m = M_AEAD;   break;
    }
    at->v = (at->m & (M_SHA256 | M_SHA384 | M_AEAD)) ? V_TLS12 : V_OLD;
    if (at->e & (E_3DES | E_RC4)) {
        at->s = S_MEDIUM | S_NOTDEFAULT;
    } else if (at->e & E_NULL) {
        at->s = S_NONE;
    } else {
        at->s = S_HIGH;
    }
    if (at->a & A_NULL) {
        at->s |= S_NOTDEFAULT;
    }
}

/* An OpenSSL alias: a set per class, 0 meaning "any". */
struct alias {
    const char *name;
    unsigned k, a, e, m, v, s;
    int none;          /* known to OpenSSL, nothing GnuTLS has: matches none */
};

static const struct alias aliases[] = {
    { "ALL", 0, 0, E_ALL & ~E_NULL, 0, 0, 0, 0 },
    { "COMPLEMENTOFALL", 0, 0, E_NULL, 0, 0, 0, 0 },
    { "COMPLEMENTOFDEFAULT", 0, 0, E_ALL & ~E_NULL, 0, 0, S_NOTDEFAULT, 0 },
    { "HIGH", 0, 0, 0, 0, 0, S_HIGH, 0 },
    { "MEDIUM", 0, 0, 0, 0, 0, S_MEDIUM, 0 },
    { "kRSA", K_RSA, 0, 0, 0, 0, 0, 0 },
    { "RSA", K_RSA, 0, 0, 0, 0, 0, 0 },
    { "aRSA", 0, A_RSA, 0, 0, 0, 0, 0 },
    { "kEDH", K_DHE, 0, 0, 0, 0, 0, 0 },
    { "kDHE", K_DHE, 0, 0, 0, 0, 0, 0 },
    { "DH", K_DHE, 0, 0, 0, 0, 0, 0 },
    { "EDH", K_DHE, A_RSA | A_DSS | A_ECDSA, 0, 0, 0, 0, 0 },
    { "DHE", K_DHE, A_RSA | A_DSS | A_ECDSA, 0, 0, 0, 0, 0 },
    { "ADH", K_DHE, A_NULL, 0, 0, 0, 0, 0 },
    { "kEECDH", K_ECDHE, 0, 0, 0, 0, 0, 0 },
    { "kECDHE", K_ECDHE, 0, 0, 0, 0, 0, 0 },
    { "ECDH", K_ECDHE, 0, 0, 0, 0, 0, 0 },
    { "EECDH", K_ECDHE, A_RSA | A_DSS | A_ECDSA, 0, 0, 0, 0, 0 },
    { "ECDHE", K_ECDHE, A_RSA | A_DSS | A_ECDSA, 0, 0, 0, 0, 0 },
    { "AECDH", K_ECDHE, A_NULL, 0, 0, 0, 0, 0 },
    { "aDSS", 0, A_DSS, 0, 0, 0, 0, 0 },
    { "DSS", 0, A_DSS, 0, 0, 0, 0, 0 },
    { "aECDSA", 0, A_ECDSA, 0, 0, 0, 0, 0 },
    { "ECDSA", 0, A_ECDSA, 0, 0, 0, 0, 0 },
    { "aNULL", 0, A_NULL, 0, 0, 0, 0, 0 },
    { "eNULL", 0, 0, E_NULL, 0, 0, 0, 0 },
    { "NULL", 0, 0, E_NULL, 0, 0, 0, 0 },
    { "AES", 0, 0, E_AES, 0, 0, 0, 0 },
    { "AES128", 0, 0, E_AES128 | E_AES128GCM | E_AES128CCM | E_AES128CCM8,
      0, 0, 0, 0 },
    { "AES256", 0, 0, E_AES256 | E_AES256GCM | E_AES256CCM | E_AES256CCM8,
      0, 0, 0, 0 },
    { "AESGCM", 0, 0, E_AES128GCM | E_AES256GCM, 0, 0, 0, 0 },
    { "AESCCM", 0, 0, E_AES128CCM | E_AES256CCM | E_AES128CCM8 | E_AES256CCM8,
      0, 0, 0, 0 },
    { "AESCCM8", 0, 0, E_AES128CCM8 | E_AES256CCM8, 0, 0, 0, 0 },
    { "CAMELLIA", 0, 0, E_CAMELLIA128 | E_CAMELLIA256, 0, 0, 0, 0 },
    { "CAMELLIA128", 0, 0, E_CAMELLIA128, 0, 0, 0, 0 },
    { "CAMELLIA256", 0, 0, E_CAMELLIA256, 0, 0, 0, 0 },
    { "CHACHA20", 0, 0, E_CHACHA20, 0, 0, 0, 0 },
    { "3DES", 0, 0, E_3DES, 0, 0, 0, 0 },
    { "RC4", 0, 0, E_RC4, 0, 0, 0, 0 },
    { "MD5", 0, 0, 0, M_MD5, 0, 0, 0 },
    { "SHA1", 0, 0, 0, M_SHA1, 0, 0, 0 },
    { "SHA", 0, 0, 0, M_SHA1, 0, 0, 0 },
    { "SHA256", 0, 0, 0, M_SHA256, 0, 0, 0 },
    { "SHA384", 0, 0, 0, M_SHA384, 0, 0, 0 },
    { "TLSv1.2", 0, 0, 0, 0, V_TLS12, 0, 0 },
    { "TLSv1.0", 0, 0, 0, 0, V_OLD, 0, 0 },
    { "TLSv1", 0, 0, 0, 0, V_OLD, 0, 0 },
    { "SSLv3", 0, 0, 0, 0, V_OLD, 0, 0 },
    /* OpenSSL knows these; GnuTLS has none of them (or they need
     * credentials postern never sets): they select nothing */
    { "EXP", 0, 0, 0, 0, 0, 0, 1 },
    { "EXPORT", 0, 0, 0, 0, 0, 0, 1 },
    { "EXPORT40", 0, 0, 0, 0, 0, 0, 1 },
    { "EXPORT56", 0, 0, 0, 0, 0, 0, 1 },
    { "LOW", 0, 0, 0, 0, 0, 0, 1 },
    { "DES", 0, 0, 0, 0, 0, 0, 1 },
    { "RC2", 0, 0, 0, 0, 0, 0, 1 },
    { "IDEA", 0, 0, 0, 0, 0, 0, 1 },
    { "SEED", 0, 0, 0, 0, 0, 0, 1 },
    { "ARIA", 0, 0, 0, 0, 0, 0, 1 },
    { "ARIA128", 0, 0, 0, 0, 0, 0, 1 },
    { "ARIA256", 0, 0, 0, 0, 0, 0, 1 },
    { "ARIAGCM", 0, 0, 0, 0, 0, 0, 1 },
    { "PSK", 0, 0, 0, 0, 0, 0, 1 },
    { "kPSK", 0, 0, 0, 0, 0, 0, 1 },
    { "aPSK", 0, 0, 0, 0, 0, 0, 1 },
    { "kECDHEPSK", 0, 0, 0, 0, 0, 0, 1 },
    { "kDHEPSK", 0, 0, 0, 0, 0, 0, 1 },
    { "kRSAPSK", 0, 0, 0, 0, 0, 0, 1 },
    { "SRP", 0, 0, 0, 0, 0, 0, 1 },
    { "kSRP", 0, 0, 0, 0, 0, 0, 1 },
    { "aSRP", 0, 0, 0, 0, 0, 0, 1 },
    { "GOST94", 0, 0, 0, 0, 0, 0, 1 },
    { "GOST89MAC", 0, 0, 0, 0, 0, 0, 1 },
    { "kGOST", 0, 0, 0, 0, 0, 0, 1 },
    { "aGOST", 0, 0, 0, 0, 0, 0, 1 },
    { "aGOST01", 0, 0, 0, 0, 0, 0, 1 },
    { "kDH", 0, 0, 0, 0, 0, 0, 1 },
    { "kDHr", 0, 0, 0, 0, 0, 0, 1 },
    { "kDHd", 0, 0, 0, 0, 0, 0, 1 },
    { "aDH", 0, 0, 0, 0, 0, 0, 1 },
    { "kECDH", 0, 0, 0, 0, 0, 0, 1 },
    { "aECDH", 0, 0, 0, 0, 0, 0, 1 },
    { "kKRB5", 0, 0, 0, 0, 0, 0, 1 },
    { "KRB5", 0, 0, 0, 0, 0, 0, 1 },
};

#define NALIASES (sizeof(aliases) / sizeof(aliases[0]))

/* 1 if suite i is in the alias's set. */
static int
alias_match(const struct alias *al, size_t i)
{
    struct attrs at;

    if (al->none) {
        return 0;
    }
    suite_attrs(i, &at);
    if (at.tls13) {
        return 0;                       /* TLS 1.3 only by name */
    }
    return (!al->k || (al->k & at.k)) && (!al->a || (al->a & at.a))
        && (!al->e || (al->e & at.e)) && (!al->m || (al->m & at.m))
        && (!al->v || (al->v & at.v)) && (!al->s || (al->s & at.s));
}

/* One element of a rule ("ECDHE" in "ECDHE+AESGCM"): alias or suite. */
struct element {
    const struct alias *alias;
    size_t suite;                       /* when alias == NULL */
};

/* Find an element by name; 0 / -1 unknown. */
static int
element_find(const char *name, size_t len, struct element *el)
{
    size_t i;

    for (i = 0; i < NALIASES; i++) {
        if (strlen(aliases[i].name) == len
            && memcmp(aliases[i].name, name, len) == 0) {
            el->alias = &aliases[i];
            return 0;
        }
    }
    for (i = 0; i < NSUITES; i++) {
        if (strlen(suites[i].name) == len
            && memcmp(suites[i].name, name, len) == 0) {
            el->alias = NULL;
            el->suite = i;
            return 0;
        }
    }
    return -1;
}

/* The rule state: OpenSSL's linked list as an order array. */
struct rules {
    size_t order[NSUITES];
    unsigned char active[NSUITES];
    unsigned char killed[NSUITES];
    unsigned char excluded[NSUITES];    /* by `!`, or by `-` not undone */
};

/* Move the suites flagged in sel to the end of the order, keeping their
 * relative order. */
static void
move_to_end(struct rules *r, const unsigned char *sel)
{
    size_t tmp[NSUITES], n = 0, i;

    for (i = 0; i < NSUITES; i++) {
        if (!sel[r->order[i]]) {
            tmp[n++] = r->order[i];
        }
    }
    for (i = 0; i < NSUITES; i++) {
        if (sel[r->order[i]]) {
            tmp[n++] = r->order[i];
        }
    }
    memcpy(r->order, tmp, sizeof(tmp));
}

/* Apply one operation to the suites flagged in match. */
static void
apply(struct rules *r, char op, const unsigned char *match)
{
    unsigned char sel[NSUITES];
    size_t i;

    memset(sel, 0, sizeof(sel));
    for (i = 0; i < NSUITES; i++) {
        if (!match[i] || r->killed[i]) {
            continue;
        }
        switch (op) {
        case '!':
            r->killed[i] = 1;
            r->active[i] = 0;
            r->excluded[i] = 1;
            break;
        case '-':
            r->active[i] = 0;
            r->excluded[i] = 1;
            break;
        case '+':
            sel[i] = r->active[i];
            break;
        default:
            if (!r->active[i]) {
                r->active[i] = 1;
                sel[i] = 1;
            }
            r->excluded[i] = 0;
            break;
        }
    }
    if (op == '+' || op == 0) {
        move_to_end(r, sel);
    }
}

/* @STRENGTH: active suites by cipher bits, strongest first (stable). */
static void
sort_strength(struct rules *r)
{
    static const int levels[] = { 256, 128, 112, 0 };
    unsigned char sel[NSUITES];
    struct attrs at;
    size_t l, i;

    for (l = 0; l < sizeof(levels) / sizeof(levels[0]); l++) {
        memset(sel, 0, sizeof(sel));
        for (i = 0; i < NSUITES; i++) {
            suite_attrs(i, &at);
            sel[i] = r->active[i] && at.bits == levels[l];
        }
        move_to_end(r, sel);
    }
}

static int rules_run(struct rules *r, const char *s, int depth,
                     char *err, size_t errlen);

/* One rule ("!aNULL", "ECDHE+AESGCM", "@STRENGTH"); 0 / -1 with err. */
static int
rule_one(struct rules *r, const char *tok, size_t len, int depth,
         char *err, size_t errlen)
{
    unsigned char match[NSUITES];
    struct element el = { NULL, 0 };
    const char *p = tok, *end = tok + len, *q;
    char op = 0;
    size_t i;

    if (len == 9 && memcmp(tok, "@STRENGTH", 9) == 0) {
        sort_strength(r);
        return 0;
    }
    if (len == 7 && memcmp(tok, "DEFAULT", 7) == 0) {
        return rules_run(r, "ALL:!COMPLEMENTOFDEFAULT:!eNULL", depth + 1,
                         err, errlen);
    }
    if (*p == '!' || *p == '-' || *p == '+') {
        op = *p++;
    }
    if (p == end) {
        snprintf(err, errlen, "ssl_ciphers: empty rule \"%.*s\"",
                 (int)len, tok);
        return -1;
    }
    memset(match, 1, sizeof(match));
    while (p < end) {
        q = memchr(p, '+', (size_t)(end - p));
        if (q == NULL) {
            q = end;
        }
        if (q == p || element_find(p, (size_t)(q - p), &el) < 0) {
            snprintf(err, errlen,
                     "ssl_ciphers: \"%.*s\" cannot be translated to GnuTLS "
                     "(use ssl_priority)", (int)len, tok);
            return -1;
        }
        for (i = 0; i < NSUITES; i++) {
            if (el.alias != NULL) {
                match[i] &= alias_match(el.alias, i);
            } else {
                match[i] &= i == el.suite;
            }
        }
        p = q < end ? q + 1 : q;
    }
    apply(r, op, match);
    return 0;
}

/* Run a whole cipher string; rules are separated by ':', ',' or spaces. */
static int
rules_run(struct rules *r, const char *s, int depth, char *err, size_t errlen)
{
    const char *p = s, *q;

    if (depth > 2) {
        snprintf(err, errlen, "ssl_ciphers: DEFAULT nested too deeply");
        return -1;
    }
    while (*p != '\0') {
        if (*p == ':' || *p == ',' || *p == ' ' || *p == '\t') {
            p++;
            continue;
        }
        q = p;
        while (*q != '\0' && *q != ':' && *q != ',' && *q != ' '
               && *q != '\t') {
            q++;
        }
        if (rule_one(r, p, (size_t)(q - p), depth, err, errlen) < 0) {
            return -1;
        }
        p = q;
    }
    return 0;
}

/* A growing output string; errors are sticky. */
struct out {
    char *s;
    size_t len, size;
    int failed;
};

/* Append ":+NAME" (or text as given when raw). */
static void
out_add(struct out *o, const char *prefix, const char *name)
{
    size_t need = strlen(prefix) + strlen(name) + 1;
    char *n;

    if (o->failed) {
        return;
    }
    if (o->len + need > o->size) {
        size_t size = (o->size + need) * 2;

        n = realloc(o->s, size);
        if (n == NULL) {
            o->failed = 1;
            return;
        }
        o->s = n;
        o->size = size;
    }
    o->len += (size_t)snprintf(o->s + o->len, o->size - o->len, "%s%s",
                               prefix, name);
}

/* Add an algorithm name once to one of the lists. */
static void
list_add(const char **list, size_t *n, size_t max, const char *name)
{
    size_t i;

    for (i = 0; i < *n; i++) {
        if (strcmp(list[i], name) == 0) {
            return;
        }
    }
    if (*n < max) {
        list[(*n)++] = name;
    }
}

/* Map the ssl_protocols list into VERS- flags. 0 / -1 with err. */
static int
protocols_map(const struct strlist *protocols, int *tls10, int *tls11,
              int *tls12, int *tls13, char *err, size_t errlen)
{
    size_t i;

    *tls10 = *tls11 = *tls12 = *tls13 = 0;
    if (protocols == NULL || protocols->n == 0) {
        *tls12 = *tls13 = 1;
        return 0;
    }
    for (i = 0; i < protocols->n; i++) {
        const char *p = protocols->v[i];

        if (strcmp(p, "TLSv1") == 0) {
            *tls10 = 1;
        } else if (strcmp(p, "TLSv1.1") == 0) {
            *tls11 = 1;
        } else if (strcmp(p, "TLSv1.2") == 0) {
            *tls12 = 1;
        } else if (strcmp(p, "TLSv1.3") == 0) {
            *tls13 = 1;
        } else if (strcmp(p, "SSLv2") == 0 || strcmp(p, "SSLv3") == 0) {
            continue;                   /* the loader warned already */
        } else {
            snprintf(err, errlen, "ssl_protocols: unknown protocol \"%s\"",
                     p);
            return -1;
        }
    }
    if (!(*tls10 || *tls11 || *tls12 || *tls13)) {
        snprintf(err, errlen,
                 "ssl_protocols: no protocol that GnuTLS supports is left");
        return -1;
    }
    return 0;
}

/* 1 if name is one of the n names in list. */
static int
list_has(const char *const *list, size_t n, const char *name)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(list[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The algorithm lists written into the priority string. */
struct algs {
    const char *cl[NSUITES + 4], *ml[8], *kl[16];
    size_t ncl, nml, nkl;
};

/* The TLS 1.3 ciphers (see the file header): the named suites, else
 * OpenSSL's defaults, and while TLS 1.2 is on (tls12_on) only ciphers it
 * uses already.  Returns how many TLS 1.3 ciphers there are, or -1 with
 * err for a named suite that would widen TLS 1.2. */
static int
tls13_ciphers(const struct rules *r, struct algs *al, int tls12_on,
              const char *ciphers, char *err, size_t errlen)
{
    size_t i, max = sizeof(al->cl) / sizeof(al->cl[0]);
    const char *name;
    int n = 0, named = 0;

    for (i = 0; i < NSUITES; i++) {
        const struct suite *su = &suites[r->order[i]];

        if (!r->active[r->order[i]] || su->kx != GNUTLS_KX_UNKNOWN) {
            continue;
        }
        named++;
        name = gnutls_cipher_get_name(su->cipher);
        if (tls12_on && !list_has(al->cl, al->ncl, name)) {
            snprintf(err, errlen, "ssl_ciphers: \"%s\" needs the cipher "
                     "%s, which \"%s\" does not select for TLS 1.2; GnuTLS "
                     "has one cipher list for both versions, so TLS 1.2 "
                     "would get it too (select it for TLS 1.2 as well, "
                     "leave TLSv1.2 out of ssl_protocols, or use "
                     "ssl_priority)", su->name, name, ciphers);
            return -1;
        }
        list_add(al->cl, &al->ncl, max, name);
        n++;
    }
    if (named > 0) {
        return n;
    }
    for (i = 0; i < sizeof(tls13_default) / sizeof(tls13_default[0]); i++) {
        name = gnutls_cipher_get_name(tls13_default[i]);
        if (tls12_on && !list_has(al->cl, al->ncl, name)) {
            continue;                   /* it would widen TLS 1.2 */
        }
        list_add(al->cl, &al->ncl, max, name);
        n++;
    }
    return n;
}

/* Refuse a string whose exclusions GnuTLS would undo: a TLS 1.2 or older
 * suite it excludes whose key exchange, cipher and MAC all stand in the
 * lists (enabled as a combination of other selected suites).  0 / -1. */
static int
exclusions_hold(const struct rules *r, const struct algs *al, int tls_old,
                int tls12, const char *ciphers, char *err, size_t errlen)
{
    struct attrs at;
    size_t i;

    for (i = 0; i < NSUITES; i++) {
        const struct suite *su = &suites[i];

        if (!r->excluded[i] || r->active[i] || su->kx == GNUTLS_KX_UNKNOWN) {
            continue;
        }
        suite_attrs(i, &at);
        if (!(tls12 || (tls_old && at.v == V_OLD))) {
            continue;                   /* no enabled version has it */
        }
        if (list_has(al->kl, al->nkl, gnutls_kx_get_name(su->kx))
            && list_has(al->cl, al->ncl, gnutls_cipher_get_name(su->cipher))
            && list_has(al->ml, al->nml, gnutls_mac_get_name(su->mac))) {
            snprintf(err, errlen, "ssl_ciphers: \"%s\" excludes %s, but "
                     "GnuTLS would enable it: it enables every combination "
                     "of the selected suites' key exchanges, ciphers and "
                     "MACs (exclude its cipher, MAC or key exchange as a "
                     "whole, or use ssl_priority)", ciphers, su->name);
            return -1;
        }
    }
    return 0;
}

/* The translation: see the file header. */
char *
tls_priority_from_openssl(const char *ciphers,
                          const struct strlist *protocols,
                          int prefer_server, char *warn, size_t warnlen,
                          char *err, size_t errlen)
{
    struct rules r;
    struct out o = { NULL, 0, 0, 0 };
    struct algs al;
    size_t i, n12 = 0;
    int tls10, tls11, tls12, tls13, n13 = 0;

    if (warn != NULL && warnlen > 0) {
        warn[0] = '\0';
    }
    if (protocols_map(protocols, &tls10, &tls11, &tls12, &tls13,
                      err, errlen) < 0) {
        return NULL;
    }
    if (ciphers == NULL) {
        ciphers = "HIGH:!aNULL:!MD5";
    }
    memset(&r, 0, sizeof(r));
    for (i = 0; i < NSUITES; i++) {
        r.order[i] = i;
    }
    if (rules_run(&r, ciphers, 0, err, errlen) < 0) {
        return NULL;
    }

    /* TLS 1.2 and older suites first: they order the lists */
    memset(&al, 0, sizeof(al));
    for (i = 0; i < NSUITES; i++) {
        const struct suite *su = &suites[r.order[i]];

        if (!r.active[r.order[i]] || su->kx == GNUTLS_KX_UNKNOWN) {
            continue;
        }
        n12++;
        list_add(al.cl, &al.ncl, sizeof(al.cl) / sizeof(al.cl[0]),
                 gnutls_cipher_get_name(su->cipher));
        list_add(al.ml, &al.nml, sizeof(al.ml) / sizeof(al.ml[0]),
                 gnutls_mac_get_name(su->mac));
        list_add(al.kl, &al.nkl, sizeof(al.kl) / sizeof(al.kl[0]),
                 gnutls_kx_get_name(su->kx));
    }
    if (n12 == 0 && !tls13) {
        snprintf(err, errlen, "ssl_ciphers: \"%s\" selects no cipher suite "
                 "for the enabled protocols", ciphers);
        return NULL;
    }
    if (n12 == 0) {
        /* only TLS 1.3 can be negotiated */
        tls10 = tls11 = tls12 = 0;
    }
    if (tls13) {
        n13 = tls13_ciphers(&r, &al, tls12, ciphers, err, errlen);
        if (n13 < 0) {
            return NULL;
        }
        if (n13 == 0) {
            /* n12 > 0 here: TLS 1.2 is on and keeps the connection */
            tls13 = 0;
            if (warn != NULL) {
                snprintf(warn, warnlen, "ssl_ciphers: \"%s\" selects none "
                         "of the TLS 1.3 ciphers (AES-256-GCM, "
                         "CHACHA20-POLY1305, AES-128-GCM) for TLS 1.2, and "
                         "GnuTLS has one cipher list for both versions: "
                         "TLS 1.3 is off", ciphers);
            }
        } else {
            list_add(al.ml, &al.nml, sizeof(al.ml) / sizeof(al.ml[0]),
                     gnutls_mac_get_name(GNUTLS_MAC_AEAD));
        }
    }
    if (exclusions_hold(&r, &al, tls10 || tls11, tls12, ciphers, err,
                        errlen) < 0) {
        return NULL;
    }

    out_add(&o, "", "NORMAL:-VERS-ALL");
    if (tls13) {
        out_add(&o, ":+", "VERS-TLS1.3");
    }
    if (tls12) {
        out_add(&o, ":+", "VERS-TLS1.2");
    }
    if (tls11) {
        out_add(&o, ":+", "VERS-TLS1.1");
    }
    if (tls10) {
        out_add(&o, ":+", "VERS-TLS1.0");
    }
    out_add(&o, ":", "-CIPHER-ALL");
    for (i = 0; i < al.ncl; i++) {
        out_add(&o, ":+", al.cl[i]);
    }
    out_add(&o, ":", "-MAC-ALL");
    for (i = 0; i < al.nml; i++) {
        out_add(&o, ":+", al.ml[i]);
    }
    out_add(&o, ":", "-KX-ALL");
    for (i = 0; i < al.nkl; i++) {
        out_add(&o, ":+", al.kl[i]);
    }
    if (prefer_server) {
        out_add(&o, ":", "%SERVER_PRECEDENCE");
    }
    if (o.failed || o.s == NULL) {
        free(o.s);
        snprintf(err, errlen, "ssl_ciphers: out of memory");
        return NULL;
    }
    return o.s;
}

/* Name of a negotiated suite for Auth-SSL-Cipher. */
const char *
tls_suite_openssl_name(gnutls_protocol_t version, gnutls_kx_algorithm_t kx,
                       gnutls_cipher_algorithm_t cipher,
                       gnutls_mac_algorithm_t mac)
{
    size_t i;

    if (version == GNUTLS_TLS1_3) {
        kx = GNUTLS_KX_UNKNOWN;
        mac = GNUTLS_MAC_AEAD;
    }
    for (i = 0; i < NSUITES; i++) {
        if (suites[i].kx == kx && suites[i].cipher == cipher
            && suites[i].mac == mac) {
            return suites[i].name;
        }
    }
    return NULL;
}

/* Table walk for tests. */
int
tls_suite_get(size_t i, const char **name_r, gnutls_kx_algorithm_t *kx_r,
              gnutls_cipher_algorithm_t *cipher_r,
              gnutls_mac_algorithm_t *mac_r)
{
    if (i >= NSUITES) {
        return 0;
    }
    *name_r = suites[i].name;
    *kx_r = suites[i].kx;
    *cipher_r = suites[i].cipher;
    *mac_r = suites[i].mac;
    return 1;
}
