/*
 * test_tls_priority.c - OpenSSL cipher strings and ssl_protocols translated
 * into GnuTLS priorities: every string GnuTLS must accept, the suites it
 * then enables, and the tokens that must be refused by name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "tap.h"
#include "tls.h"
#include "tls_int.h"

static char warning[512];

/* The translation, its notice (if any) kept in warning. */
static char *
translate(const char *ciphers, const struct strlist *protos, int prefer,
          char *err, size_t errlen)
{
    return tls_priority_from_openssl(ciphers, protos, prefer, warning,
                                     sizeof(warning), err, errlen);
}

/* Translate and init; the names of enabled suites joined by ' ' into out.
 * Returns 0 ok, -1 translation error (err set), -2 GnuTLS refused. */
static int only12;      /* enabled() lists only TLS 1.2 and older suites */

static int
enabled(const char *ciphers, const struct strlist *protos, int prefer,
        char *out, size_t outlen, char *err, size_t errlen)
{
    gnutls_priority_t p;
    const char *errpos;
    char *s;
    unsigned i, idx;
    int ret;

    out[0] = '\0';
    s = translate(ciphers, protos, prefer, err, errlen);
    if (s == NULL) {
        return -1;
    }
    ret = gnutls_priority_init(&p, s, &errpos);
    if (ret < 0) {
        printf("# GnuTLS refused %s at %s\n", s, errpos);
        free(s);
        return -2;
    }
    free(s);
    for (i = 0; ; i++) {
        ret = gnutls_priority_get_cipher_suite_index(p, i, &idx);
        if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
            break;
        }
        if (ret < 0) {
            continue;
        }
        if (strlen(out) + 64 < outlen) {
            gnutls_protocol_t v;
            const char *name = gnutls_cipher_suite_info(idx, NULL, NULL,
                                                        NULL, NULL, &v);

            if (only12 && v == GNUTLS_TLS1_3) {
                continue;
            }
            strcat(out, " ");
            strcat(out, name);
        }
    }
    strcat(out, " ");
    gnutls_priority_deinit(p);
    return 0;
}

/* How many suites the list holds. */
static int
count(const char *list)
{
    int n = 0;

    for (; *list != '\0'; list++) {
        n += *list == ' ';
    }
    return n > 0 ? n - 1 : 0;
}

/* 1 if the GnuTLS suite name is in the list. */
static int
has(const char *list, const char *suite)
{
    char pat[96];

    snprintf(pat, sizeof(pat), " %s ", suite);
    return strstr(list, pat) != NULL;
}

int
main(void)
{
    static char *p12_13[] = { "TLSv1.2", "TLSv1.3" };
    static char *p12[] = { "TLSv1.2" };
    static char *p13[] = { "TLSv1.3" };
    static char *pold[] = { "TLSv1" };
    static char *p_all[] = { "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2",
                             "TLSv1.3" };
    static char *p_bad[] = { "TLSv9" };
    static char *p_ssl[] = { "SSLv2", "SSLv3" };
    struct strlist l12_13 = { 2, p12_13 }, l12 = { 1, p12 },
                   lall = { 5, p_all }, lbad = { 1, p_bad },
                   lssl = { 2, p_ssl }, l13 = { 1, p13 },
                   lold = { 1, pold };
    static const char *accepted[] = {
        "HIGH", "MEDIUM", "DEFAULT", "ALL", "HIGH:!aNULL:!MD5",
        "HIGH:!aNULL:!eNULL:!MD5:!RC4:!3DES:!EXP:!ADH",
        "ALL:!aNULL:!eNULL:@STRENGTH", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL", "kEECDH+AESGCM:kEDH+AESGCM",
        "EECDH+AESGCM:EDH+AESGCM:AES256+EECDH:AES256+EDH",
        "DEFAULT:-AES256:+AES128", "AES128-SHA, AES256-SHA",
        "RC4:3DES:eNULL", "COMPLEMENTOFDEFAULT", "HIGH:!SEED:!IDEA:!PSK:!SRP",
        "TLS_AES_256_GCM_SHA384:ECDHE-RSA-AES256-GCM-SHA384",
        "HIGH:!aNULL:!MD5:!CHACHA20", "HIGH:!aNULL:!MD5:!AES256",
        "ECDHE:-ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES256-SHA",
    };
    char out[8192], err[256];
    const char *name;
    gnutls_kx_algorithm_t kx;
    gnutls_cipher_algorithm_t ci;
    gnutls_mac_algorithm_t mac;
    size_t i;
    char *s;

    /* every table row is a real GnuTLS suite */
    for (i = 0; tls_suite_get(i, &name, &kx, &ci, &mac); i++) {
        unsigned char id[2];
        gnutls_kx_algorithm_t k2;
        gnutls_cipher_algorithm_t c2;
        gnutls_mac_algorithm_t m2;
        size_t j;
        int found = 0;

        for (j = 0; gnutls_cipher_suite_info(j, id, &k2, &c2, &m2, NULL);
             j++) {
            if (k2 == kx && c2 == ci && m2 == mac) {
                found = 1;
            }
        }
        if (!found) {
            ok(0, "table suite %s exists in GnuTLS", name);
        }
    }
    ok(i > 80, "suite table has %zu rows, each known to GnuTLS", i);

    for (i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        is_int(enabled(accepted[i], &l12_13, 0, out, sizeof(out), err,
                       sizeof(err)), 0, "\"%s\" accepted by GnuTLS",
               accepted[i]);
    }
    is_int(enabled("HIGH", &lall, 1, out, sizeof(out), err, sizeof(err)), 0,
           "all protocols with prefer_server accepted");

    s = translate("HIGH", &l12_13, 1, err, sizeof(err));
    ok(s != NULL && strstr(s, "%SERVER_PRECEDENCE") != NULL,
       "prefer_server adds %%SERVER_PRECEDENCE");
    ok(s != NULL && strstr(s, "+VERS-TLS1.3") && strstr(s, "+VERS-TLS1.2")
       && !strstr(s, "+VERS-TLS1.1"), "TLSv1.2 TLSv1.3 -> VERS entries");
    free(s);
    s = translate("HIGH", &lall, 0, err, sizeof(err));
    ok(s != NULL && strstr(s, "+VERS-TLS1.0") && strstr(s, "+VERS-TLS1.1")
       && !strstr(s, "SSL3") && !strstr(s, "%SERVER"),
       "TLSv1 -> VERS-TLS1.0, SSLv3 dropped, no server precedence");
    free(s);
    s = translate(NULL, NULL, 0, err, sizeof(err));
    ok(s != NULL, "defaults: NULL ciphers and protocols");
    free(s);

    /* HIGH:!aNULL:!MD5 */
    enabled("HIGH:!aNULL:!MD5", &l12_13, 0, out, sizeof(out), err,
            sizeof(err));
    ok(has(out, "TLS_ECDHE_RSA_AES_128_GCM_SHA256"), "HIGH has ECDHE-RSA "
       "AES128-GCM");
    ok(has(out, "TLS_AES_256_GCM_SHA384"), "TLS 1.3 defaults kept");
    ok(!has(out, "TLS_DH_ANON_AES_128_CBC_SHA1"), "!aNULL drops ADH");
    ok(!has(out, "TLS_RSA_3DES_EDE_CBC_SHA1"), "HIGH has no 3DES");
    ok(!has(out, "TLS_RSA_ARCFOUR_128_SHA1"), "HIGH has no RC4");

    enabled("MEDIUM", &l12, 0, out, sizeof(out), err, sizeof(err));
    ok(has(out, "TLS_RSA_3DES_EDE_CBC_SHA1")
       && !has(out, "TLS_RSA_AES_128_GCM_SHA256"), "MEDIUM: 3DES, not AES");
    enabled("ALL:!RC4:!3DES", &l12, 0, out, sizeof(out), err, sizeof(err));
    ok(!has(out, "TLS_RSA_3DES_EDE_CBC_SHA1")
       && !has(out, "TLS_RSA_ARCFOUR_128_SHA1")
       && has(out, "TLS_RSA_AES_128_CBC_SHA1"), "!RC4 !3DES");
    ok(!has(out, "TLS_RSA_NULL_SHA1"), "ALL has no eNULL");
    enabled("ALL:!eNULL:!MD5", &l12, 0, out, sizeof(out), err, sizeof(err));
    ok(!has(out, "TLS_RSA_ARCFOUR_128_MD5") && !has(out, "TLS_RSA_NULL_MD5"),
       "!MD5 drops MD5 suites");
    enabled("ALL:!ADH:!EXP", &l12, 0, out, sizeof(out), err, sizeof(err));
    ok(!has(out, "TLS_DH_ANON_AES_128_GCM_SHA256")
       && has(out, "TLS_ECDH_ANON_AES_128_CBC_SHA1"),
       "!ADH drops anon DH, keeps AECDH; !EXP accepted");
    enabled("DEFAULT", &l12, 0, out, sizeof(out), err, sizeof(err));
    ok(!has(out, "TLS_DH_ANON_AES_128_GCM_SHA256")
       && !has(out, "TLS_ECDH_ANON_AES_128_CBC_SHA1")
       && has(out, "TLS_ECDHE_ECDSA_AES_256_GCM_SHA384"),
       "DEFAULT has no anonymous suites");
    enabled("eNULL", &l12, 0, out, sizeof(out), err, sizeof(err));
    ok(has(out, "TLS_RSA_NULL_SHA1") && !has(out, "TLS_RSA_AES_128_CBC_SHA1"),
       "eNULL alone");
    enabled("ECDHE-RSA-AES128-GCM-SHA256", &l12, 0, out, sizeof(out), err,
            sizeof(err));
    is_str(out, " TLS_ECDHE_RSA_AES_128_GCM_SHA256 ",
           "explicit suite name, TLS 1.2 only: exactly that suite");
    enabled("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
            &l12, 0, out, sizeof(out), err, sizeof(err));
    ok(has(out, "TLS_ECDHE_RSA_AES_128_GCM_SHA256")
       && has(out, "TLS_ECDHE_ECDSA_AES_256_GCM_SHA384")
       && !has(out, "TLS_RSA_AES_128_GCM_SHA256"), "two explicit suites");
    enabled("TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256", &l12_13, 0,
            out, sizeof(out), err, sizeof(err));
    ok(has(out, "TLS_AES_128_GCM_SHA256")
       && !has(out, "TLS_AES_256_GCM_SHA384"),
       "a TLS 1.3 name chooses the TLS 1.3 suites");

    /* TLS 1.3 on does not change the TLS 1.2 suites of any string */
    for (i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        char with13[8192];

        only12 = 1;
        enabled(accepted[i], &l12_13, 0, with13, sizeof(with13), err,
                sizeof(err));
        enabled(accepted[i], &l12, 0, out, sizeof(out), err, sizeof(err));
        only12 = 0;
        is_str(with13, out, "\"%s\": TLS 1.3 adds no TLS 1.2 suite",
               accepted[i]);
    }

    /* exclusions hold for TLS 1.2 and reach the TLS 1.3 defaults */
    enabled("HIGH:!aNULL:!MD5:!CHACHA20", &l12_13, 0, out, sizeof(out), err,
            sizeof(err));
    ok(!has(out, "TLS_ECDHE_RSA_CHACHA20_POLY1305")
       && !has(out, "TLS_CHACHA20_POLY1305_SHA256")
       && has(out, "TLS_AES_256_GCM_SHA384")
       && has(out, "TLS_AES_128_GCM_SHA256") && warning[0] == '\0',
       "!CHACHA20: not for TLS 1.2, nor for TLS 1.3");
    enabled("HIGH:!aNULL:!MD5:!AES256", &l12_13, 0, out, sizeof(out), err,
            sizeof(err));
    ok(!has(out, "TLS_ECDHE_RSA_AES_256_GCM_SHA384")
       && !has(out, "TLS_AES_256_GCM_SHA384")
       && has(out, "TLS_CHACHA20_POLY1305_SHA256"),
       "!AES256: not for TLS 1.2, nor for TLS 1.3");
    enabled("ECDHE-RSA-AES128-GCM-SHA256", &l12_13, 0, out, sizeof(out), err,
            sizeof(err));
    ok(has(out, "TLS_ECDHE_RSA_AES_128_GCM_SHA256")
       && has(out, "TLS_AES_128_GCM_SHA256") && count(out) == 2,
       "one named suite and TLS 1.3 on: that suite and its TLS 1.3 "
       "cipher only:%s", out);
    enabled("ECDHE-RSA-AES256-SHA", &l12_13, 0, out, sizeof(out), err,
            sizeof(err));
    is_str(out, " TLS_ECDHE_RSA_AES_256_CBC_SHA1 ",
           "no TLS 1.3 cipher allowed: TLS 1.2 exactly as named");
    ok(strstr(warning, "TLS 1.3 is off") != NULL
       && strstr(warning, "ECDHE-RSA-AES256-SHA") != NULL,
       "and a notice: %s", warning);
    s = translate("ECDHE-RSA-AES256-SHA", &l12_13, 0, err, sizeof(err));
    ok(s != NULL && strstr(s, "VERS-TLS1.3") == NULL, "no VERS-TLS1.3: %s",
       s ? s : err);
    free(s);
    enabled("ECDHE-RSA-AES256-SHA", &l13, 0, out, sizeof(out), err,
            sizeof(err));
    ok(has(out, "TLS_AES_256_GCM_SHA384")
       && has(out, "TLS_CHACHA20_POLY1305_SHA256") && warning[0] == '\0',
       "TLS 1.3 alone keeps its defaults");
    enabled("HIGH", &l12_13, 0, out, sizeof(out), err, sizeof(err));
    ok(warning[0] == '\0', "no notice when TLS 1.3 keeps a cipher");
    ok(translate("TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES256-SHA384", &l12_13,
                 0, err, sizeof(err)) == NULL
       && strstr(err, "TLS_AES_128_GCM_SHA256") != NULL
       && strstr(err, "AES-128-GCM") != NULL,
       "a named TLS 1.3 suite that would widen TLS 1.2 is refused: %s", err);
    enabled("TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES256-SHA384", &l13, 0, out,
            sizeof(out), err, sizeof(err));
    is_str(out, " TLS_AES_128_GCM_SHA256 ",
           "the same with TLS 1.3 alone: that suite");

    /* an exclusion GnuTLS would undo by combination is refused */
    ok(translate("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                 "!ECDHE-RSA-AES256-GCM-SHA384", &l12, 0, err, sizeof(err))
       == NULL && strstr(err, "excludes ECDHE-RSA-AES256-GCM-SHA384") != NULL,
       "! undone by a combination refused: %s", err);
    ok(translate("ECDHE:-ECDHE-RSA-AES256-SHA", &l12, 0, err, sizeof(err))
       == NULL && strstr(err, "excludes ECDHE-RSA-AES256-SHA") != NULL,
       "- undone by a combination refused: %s", err);
    ok(translate("ECDHE:!ECDHE-RSA-AES256-SHA", &lold, 0, err, sizeof(err))
       == NULL, "also when only TLS 1.0 would have it: %s", err);

    /* @STRENGTH orders 256-bit ciphers first */
    s = translate("AES128-SHA:AES256-SHA:@STRENGTH", &l12, 0,
                                  err, sizeof(err));
    ok(s != NULL && strstr(s, "AES-256-CBC") != NULL
       && strstr(s, "AES-256-CBC") < strstr(s, "AES-128-CBC"),
       "@STRENGTH puts AES-256 before AES-128");
    free(s);
    s = translate("AES128-SHA:AES256-SHA", &l12, 0, err,
                                  sizeof(err));
    ok(s != NULL && strstr(s, "AES-128-CBC") < strstr(s, "AES-256-CBC"),
       "without @STRENGTH the written order stays");
    free(s);
    s = translate("HIGH:+AES128", &l12, 0, err, sizeof(err));
    ok(s != NULL && strstr(s, "AES-256-GCM") < strstr(s, "AES-128-GCM"),
       "+AES128 moves AES-128 to the end");
    free(s);
    s = translate("AES128-SHA:-AES128-SHA:AES256-SHA", &l12,
                                  0, err, sizeof(err));
    ok(s != NULL && strstr(s, "AES-128-CBC") == NULL, "- removes");
    free(s);
    s = translate("!AES128-SHA:AES128-SHA:AES256-SHA", &l12,
                                  0, err, sizeof(err));
    ok(s != NULL && strstr(s, "AES-128-CBC") == NULL,
       "! removes for good");
    free(s);

    /* refusals */
    ok(translate("HIGH:FOOBAR", &l12, 0, err, sizeof(err))
       == NULL && strstr(err, "\"FOOBAR\"") != NULL,
       "unknown token named: %s", err);
    ok(translate("HIGH:@SECLEVEL=2", &l12, 0, err,
                                 sizeof(err)) == NULL
       && strstr(err, "@SECLEVEL=2") != NULL, "@SECLEVEL refused: %s", err);
    ok(translate("SEED-SHA", &l12, 0, err, sizeof(err))
       == NULL && strstr(err, "SEED-SHA") != NULL,
       "suite GnuTLS lacks refused: %s", err);
    ok(translate("ECDHE+FOO", &l12, 0, err, sizeof(err))
       == NULL && strstr(err, "ECDHE+FOO") != NULL,
       "bad element of a + rule: %s", err);
    ok(translate("!HIGH:HIGH", &l12, 0, err, sizeof(err))
       == NULL && strstr(err, "no cipher suite") != NULL,
       "nothing selected: %s", err);
    ok(translate("HIGH", &lbad, 0, err, sizeof(err)) == NULL
       && strstr(err, "TLSv9") != NULL, "unknown protocol: %s", err);
    ok(translate("HIGH", &lssl, 0, err, sizeof(err)) == NULL
       && strstr(err, "ssl_protocols") != NULL, "only SSL: %s", err);
    ok(translate("HIGH:!", &l12, 0, err, sizeof(err))
       == NULL, "a lone ! refused: %s", err);

    return tap_done();
}
