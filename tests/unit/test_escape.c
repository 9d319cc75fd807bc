/*
 * test_escape.c - URL escaping of auth request header values (NGINX's
 * mail_auth set: controls, space, '%'), the CR/LF/NUL check and the
 * sanitised copy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "str.h"
#include "tap.h"

/* Escape n bytes into a static NUL-terminated string. */
static const char *
esc(const char *s, size_t n)
{
    static char out[1024];
    struct str in = { n, (unsigned char *)s };
    size_t len = escape_mail_auth_len(in);

    if (len >= sizeof(out)) {
        return "(too long)";
    }
    if (escape_mail_auth(in, out) != len) {
        return "(length mismatch)";
    }
    out[len] = '\0';
    return out;
}

int
main(void)
{
    unsigned char all[256];
    char *out, *d;
    size_t i, n;
    int bad;

    is_str(esc("user", 4), "user", "plain text unchanged");
    is_str(esc("", 0), "", "empty");
    is_str(esc("a b", 3), "a%20b", "space");
    is_str(esc("50%", 3), "50%25", "percent");
    is_str(esc("a\r\nAuth-Server: x", 17), "a%0D%0AAuth-Server:%20x",
           "CR LF cannot start a header line");
    is_str(esc("a\0b", 3), "a%00b", "NUL");
    is_str(esc("\t\x1f", 2), "%09%1F", "TAB and 0x1f");
    is_str(esc("\x7f", 1), "\x7f", "DEL passes, as in NGINX");
    is_str(esc("\xc3\xa9t\xc3\xa9", 5), "\xc3\xa9t\xc3\xa9",
           "non-ASCII (UTF-8) passes, as in NGINX");
    is_str(esc("\xff\x80", 2), "\xff\x80", "bytes >= 0x80 pass");
    is_str(esc("p@ss:w#rd+/=?&", 14), "p@ss:w#rd+/=?&",
           "punctuation other than %% passes");
    is_str(esc("%20", 3), "%2520", "an escape in the input is escaped again");

    /* every byte: the output never holds CR, LF, NUL or space, and each
     * escaped byte is three characters */
    for (i = 0; i < 256; i++) {
        all[i] = (unsigned char)i;
    }
    {
        struct str s = { sizeof(all), all };

        n = escape_mail_auth_len(s);
        is_int(n, 256 + 2 * 34, "all bytes: 34 escaped (0x00-0x1f, SP, %%)");
        out = malloc(n + 1);
        ok(out != NULL, "malloc");
        if (out != NULL) {
            is_int(escape_mail_auth(s, out), n, "written length");
            ok(escape_is_clean((unsigned char *)out, n),
               "all bytes: output clean of CR LF NUL");
            ok(memchr(out, ' ', n) == NULL, "all bytes: no space left");
            free(out);
        }
    }
    bad = 0;
    for (i = 0; i < 256; i++) {
        int want = i < 0x20 || i == ' ' || i == '%';

        if (escape_mail_auth_byte((unsigned char)i) != want) {
            bad++;
        }
    }
    is_int(bad, 0, "escape_mail_auth_byte matches the NGINX set");

    ok(escape_is_clean((const unsigned char *)"abc def\t", 8),
       "clean: text with blanks");
    ok(!escape_is_clean((const unsigned char *)"a\rb", 3), "not clean: CR");
    ok(!escape_is_clean((const unsigned char *)"a\nb", 3), "not clean: LF");
    ok(!escape_is_clean((const unsigned char *)"a\0b", 3), "not clean: NUL");
    ok(escape_is_clean((const unsigned char *)"", 0), "clean: empty");

    {
        struct str s = { 7, (unsigned char *)"a\r\n\0b\x7f" "c" };

        d = escape_sanitized_dup(s);
        is_str(d, "a   b c", "sanitised copy: controls become spaces");
        free(d);
    }
    return tap_done();
}
