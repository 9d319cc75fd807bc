/*
 * test_xtext.c - RFC 3461 xtext encoding of XCLIENT values.
 */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "xtext.h"

/* Encode a C string of n bytes; returns a NUL-terminated heap copy. */
static char *
enc(const char *s, size_t n)
{
    struct str in = { n, (unsigned char *)s };
    size_t len = xtext_encoded_len(in);
    char *out = malloc(len + 1);
    size_t got = xtext_encode(in, out);

    ok(got == len, "encoded length of %zu bytes is %zu", n, len);
    out[got] = '\0';
    return out;
}

/* Decode a C string; 0 / -1 as xtext_decode. */
static int
dec(const char *s, unsigned char *out, size_t *len_r)
{
    return xtext_decode((struct str){ strlen(s), (unsigned char *)s }, out,
                        len_r);
}

int
main(void)
{
    unsigned char all[256], back[256 * 3];
    char *e;
    size_t len;
    int clean = 1;

    e = enc("user@example.com", 16);
    is_str(e, "user@example.com", "plain address unchanged");
    free(e);

    e = enc("a+b=c", 5);
    is_str(e, "a+2Bb+3Dc", "'+' and '=' are encoded");
    free(e);

    e = enc("a b\r\n\0z", 7);
    is_str(e, "a+20b+0D+0A+00z", "space, CR, LF, NUL are encoded");
    free(e);

    e = enc("\xc3\xa9\x7f~!", 5);
    is_str(e, "+C3+A9+7F~!", "bytes above '~' encoded, '~' and '!' kept");
    free(e);

    e = enc("[UNAVAILABLE]", 13);
    is_str(e, "[UNAVAILABLE]", "[UNAVAILABLE] unchanged");
    free(e);

    e = enc("", 0);
    is_str(e, "", "empty stays empty");
    free(e);

    /* every byte: output only xchars and '+', decodes back */
    for (int i = 0; i < 256; i++) {
        all[i] = (unsigned char)i;
    }
    e = enc((const char *)all, 256);
    for (size_t i = 0; e[i] != '\0'; i++) {
        if ((unsigned char)e[i] < '!' || (unsigned char)e[i] > '~'
            || e[i] == '=') {
            clean = 0;
        }
    }
    ok(clean, "no byte outside '!'..'~' and no '=' in the encoding");
    ok(strpbrk(e, "\r\n ") == NULL, "no CR, LF or space in the encoding");
    ok(dec(e, back, &len) == 0 && len == 256 && memcmp(back, all, 256) == 0,
       "all 256 bytes round-trip");
    free(e);

    ok(dec("a+2Bb", back, &len) == 0 && len == 3 && memcmp(back, "a+b", 3) == 0,
       "decode +2B");
    ok(dec("+2", back, &len) == -1, "truncated +XX is invalid");
    ok(dec("+2b", back, &len) == -1, "lower-case hex is invalid");
    ok(dec("+zz", back, &len) == -1, "non-hex is invalid");
    ok(dec("a b", back, &len) == -1, "raw space is invalid");
    ok(dec("a=b", back, &len) == -1, "raw '=' is invalid");
    ok(dec("", back, &len) == 0 && len == 0, "empty decodes to empty");

    ok(xtext_byte_escaped('+') && xtext_byte_escaped('=')
       && xtext_byte_escaped(' ') && xtext_byte_escaped(0x80)
       && !xtext_byte_escaped('A') && !xtext_byte_escaped('!'),
       "xtext_byte_escaped");
    return tap_done();
}
