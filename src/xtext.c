/*
 * xtext.c - RFC 3461 xtext encoding for XCLIENT values (see xtext.h).
 * Handles untrusted input (client logins, host names); no secrets, no locks.
 */

#include "xtext.h"

static const char xtext_hex[] = "0123456789ABCDEF";

/* Which bytes xtext writes as "+XX": all but the xchars of RFC 3461. */
int
xtext_byte_escaped(unsigned char c)
{
    return c < '!' || c > '~' || c == '+' || c == '=';
}

/* Length after encoding. */
size_t
xtext_encoded_len(struct str s)
{
    size_t n = 0;

    for (size_t i = 0; i < s.len; i++) {
        n += xtext_byte_escaped(s.data[i]) ? 3 : 1;
    }
    return n;
}

/* Encode into a buffer of exactly xtext_encoded_len(s) bytes. */
size_t
xtext_encode(struct str s, char *dst)
{
    size_t n = 0;

    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = s.data[i];

        if (xtext_byte_escaped(c)) {
            dst[n++] = '+';
            dst[n++] = xtext_hex[c >> 4];
            dst[n++] = xtext_hex[c & 0x0f];
        } else {
            dst[n++] = (char)c;
        }
    }
    return n;
}

/* Value of an upper-case hex digit (RFC 3461 hexchar), -1 otherwise. */
static int
xtext_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decode; the output is never longer than the input, so in place works. */
int
xtext_decode(struct str s, unsigned char *dst, size_t *len_r)
{
    size_t i = 0, n = 0;

    while (i < s.len) {
        unsigned char c = s.data[i];

        if (c == '+') {
            int hi, lo;

            if (s.len - i < 3) {
                return -1;
            }
            hi = xtext_hexval(s.data[i + 1]);
            lo = xtext_hexval(s.data[i + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            dst[n++] = (unsigned char)(hi << 4 | lo);
            i += 3;
            continue;
        }
        if (xtext_byte_escaped(c)) {
            return -1;
        }
        dst[n++] = c;
        i++;
    }
    *len_r = n;
    return 0;
}
