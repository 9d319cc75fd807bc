/*
 * tls_dn.c - a certificate's distinguished name as NGINX shows it.
 *
 * NGINX passes the client certificate's subject and issuer to the auth
 * service in OpenSSL's RFC 2253 form.  GnuTLS formats a DN after RFC 4514
 * as well, with the same order and the same escapes of , + " \ < > ; and
 * of a leading # or space, but it differs in two ways an auth service
 * would notice: three attribute names (EMAIL, givenName and surName, where
 * OpenSSL says emailAddress, GN and SN), and bytes above 0x7f, which
 * OpenSSL escapes as \XX (RFC 4514 2.4) and GnuTLS leaves raw, 8-bit text
 * in an HTTP header.  tls_dn_as_openssl() rewrites those, and nothing else.
 */

#include <stdlib.h>
#include <string.h>

#include "str.h"
#include "tls.h"

/* GnuTLS's name for an attribute type -> OpenSSL's short name. */
static const struct {
    const char *gnutls, *openssl;
} dn_names[] = {
    { "EMAIL", "emailAddress" },        /* 1.2.840.113549.1.9.1 */
    { "givenName", "GN" },              /* 2.5.4.42 */
    { "surName", "SN" },                /* 2.5.4.4 */
};

/* The attribute type at p (up to '='), renamed where OpenSSL names it
 * otherwise; *p is moved past it. */
static void
put_type(struct str_builder *b, const char **p)
{
    size_t n = strcspn(*p, "=");

    for (size_t i = 0; i < sizeof(dn_names) / sizeof(dn_names[0]); i++) {
        if (strlen(dn_names[i].gnutls) == n
            && memcmp(*p, dn_names[i].gnutls, n) == 0) {
            str_builder_puts(b, dn_names[i].openssl);
            *p += n;
            return;
        }
    }
    str_builder_add(b, *p, n);
    *p += n;
}

char *
tls_dn_as_openssl(const char *dn)
{
    static const char hex[] = "0123456789ABCDEF";
    struct str_builder b = STR_BUILDER_INIT;
    const char *p = dn;
    struct str out;
    int at_type = 1;

    while (*p != '\0') {
        unsigned char c = (unsigned char)*p;

        if (at_type) {
            put_type(&b, &p);
            at_type = 0;
            continue;
        }
        if (c == '\\' && p[1] != '\0') {
            /* an escaped byte stays escaped; only an 8-bit one is shown
             * in hex (a "\XX" pair GnuTLS wrote is kept as it is) */
            if ((unsigned char)p[1] > 0x7f) {
                char e[3] = { '\\', hex[(unsigned char)p[1] >> 4],
                              hex[(unsigned char)p[1] & 15] };

                str_builder_add(&b, e, 3);
            } else {
                str_builder_add(&b, p, 2);
            }
            p += 2;
            continue;
        }
        if (c > 0x7f) {
            char e[3] = { '\\', hex[c >> 4], hex[c & 15] };

            str_builder_add(&b, e, 3);
        } else {
            str_builder_add(&b, p, 1);
            /* an unescaped , or + ends the value: a type follows */
            at_type = c == ',' || c == '+';
        }
        p++;
    }
    if (str_builder_take(&b, &out) != 0) {
        return NULL;
    }
    return (char *)out.data;
}
