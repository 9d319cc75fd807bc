/*
 * escape.c - URL escaping of auth request header values, as NGINX does it.
 *
 * Handles untrusted input (client user names, passwords, SMTP arguments)
 * and secrets (passwords pass through escape_mail_auth; callers wipe the
 * output).  Pure functions: no state, no locks.
 */
#include <stdlib.h>

#include "escape.h"

/* Which bytes are escaped: NGINX's mail_auth table, as a predicate. */
int
escape_mail_auth_byte(unsigned char c)
{
    return c < 0x20 || c == ' ' || c == '%';
}

/* Size the escaped form: three bytes for each escaped one. */
size_t
escape_mail_auth_len(struct str s)
{
    size_t i, n;

    n = s.len;
    for (i = 0; i < s.len; i++) {
        if (escape_mail_auth_byte(s.data[i])) {
            n += 2;
        }
    }
    return n;
}

/* Write the escaped form; the caller sized dst with escape_mail_auth_len. */
size_t
escape_mail_auth(struct str s, char *dst)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;
    char *p;

    p = dst;
    for (i = 0; i < s.len; i++) {
        unsigned char c = s.data[i];

        if (escape_mail_auth_byte(c)) {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0x0f];
        } else {
            *p++ = (char)c;
        }
    }
    return (size_t)(p - dst);
}

/* Check that nothing in p can break a line: no CR, LF or NUL. */
int
escape_is_clean(const unsigned char *p, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0') {
            return 0;
        }
    }
    return 1;
}

/* Copy for display: controls become spaces so a reply stays one line. */
char *
escape_sanitized_dup(struct str s)
{
    char *out;
    size_t i;

    out = malloc(s.len + 1);
    if (out == NULL) {
        return NULL;
    }
    for (i = 0; i < s.len; i++) {
        unsigned char c = s.data[i];

        out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[s.len] = '\0';
    return out;
}
