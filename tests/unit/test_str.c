/*
 * test_str.c - the text builder of str.c (str_builder_*): what the
 * configuration-time replies of imap.c, pop3.c and smtp.c are built with.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "str.h"
#include "tap.h"

/* 1 if b is as STR_BUILDER_INIT leaves it. */
static int
is_reset(const struct str_builder *b)
{
    return b->data == NULL && b->len == 0 && b->size == 0 && b->failed == 0;
}

int
main(void)
{
    struct str_builder b = STR_BUILDER_INIT;
    struct str out;
    char big[10000], *want;
    size_t n;
    int same;

    /* nothing added: an empty C string on the heap, not NULL */
    out = STR_LIT("untouched");
    is_int(str_builder_take(&b, &out), 0, "empty builder: take succeeds");
    is_int(out.len, 0, "empty builder: length 0");
    ok(out.data != NULL && out.data[0] == '\0',
       "empty builder: a heap \"\" (callers print it)");
    ok(is_reset(&b), "empty builder: reset after take");
    free(out.data);

    /* several adds: sized, C string, zero bytes, a NUL inside */
    str_builder_add(&b, "+OK and more", 3);
    str_builder_puts(&b, " CAPA");
    str_builder_add(&b, "ignored", 0);
    str_builder_puts(&b, "");
    str_builder_add(&b, "\r\n", 2);
    is_int(b.len, 10, "several adds: length while building");
    ok(b.data[b.len] == '\0', "several adds: NUL-terminated while building");
    is_int(str_builder_take(&b, &out), 0, "several adds: take succeeds");
    is_int(out.len, 10, "several adds: length");
    is_str((const char *)out.data, "+OK CAPA\r\n", "several adds: text");
    ok(is_reset(&b), "several adds: reset after take");
    free(out.data);

    str_builder_add(&b, "a\0b", 3);
    is_int(str_builder_take(&b, &out), 0, "embedded NUL: take succeeds");
    ok(out.len == 3 && memcmp(out.data, "a\0b", 4) == 0,
       "embedded NUL: kept and counted, NUL after it");
    free(out.data);

    /* one add far past the first allocation, then many small ones */
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (char)('a' + i % 26);
    }
    str_builder_puts(&b, "<");
    str_builder_add(&b, big, sizeof(big));
    ok(b.size > sizeof(big) + 1, "large add: the buffer grew (%zu bytes)",
       b.size);
    for (int i = 0; i < 1000; i++) {
        str_builder_puts(&b, "0123456789");
    }
    str_builder_puts(&b, ">");
    is_int(str_builder_take(&b, &out), 0, "large add: take succeeds");
    n = 1 + sizeof(big) + 10000 + 1;
    want = malloc(n + 1);
    if (want == NULL) {
        ok(0, "large add: out of memory in the test");
        free(out.data);
        return tap_done();
    }
    want[0] = '<';
    memcpy(want + 1, big, sizeof(big));
    for (int i = 0; i < 1000; i++) {
        memcpy(want + 1 + sizeof(big) + 10 * (size_t)i, "0123456789", 10);
    }
    want[n - 1] = '>';
    want[n] = '\0';
    is_int(out.len, n, "large add: length");
    same = out.len == n && memcmp(out.data, want, n + 1) == 0;
    ok(same, "large add: every byte, then a NUL");
    free(want);
    free(out.data);

    /* a length that cannot be allocated: remembered, later adds ignored */
    str_builder_puts(&b, "kept until take");
    str_builder_add(&b, "x", SIZE_MAX);
    is_int(b.failed, 1, "failed add: remembered");
    str_builder_puts(&b, "more");
    is_int(b.len, strlen("kept until take"), "failed add: later adds ignored");
    out = STR_LIT("untouched");
    is_int(str_builder_take(&b, &out), -1, "failed add: take returns -1");
    ok(out.data == NULL && out.len == 0, "failed add: *out is STR_NULL");
    ok(is_reset(&b), "failed add: reset after take (text freed)");

    /* the same builder after a failure */
    str_builder_puts(&b, "again");
    is_int(str_builder_take(&b, &out), 0, "reused after failure: take");
    is_str((const char *)out.data, "again", "reused after failure: text");
    free(out.data);

    str_builder_add(&b, "x", SIZE_MAX);
    is_int(str_builder_take(&b, &out), -1,
           "failed add on an empty builder: take returns -1");
    ok(out.data == NULL && is_reset(&b),
       "failed add on an empty builder: nothing allocated or kept");

    /* ports: 1..65535, digits only, exactly n bytes */
    {
        static const char *bad[] = { "", "0", "65536", "99999", "123456",
                                     "-1", "+1", " 1", "1 ", "1a", "0x10" };
        unsigned short port = 7;

        ok(str_parse_port("1", 1, &port) == 0 && port == 1, "port 1");
        ok(str_parse_port("65535", 5, &port) == 0 && port == 65535,
           "port 65535");
        ok(str_parse_port("00143", 5, &port) == 0 && port == 143,
           "leading zeros");
        ok(str_parse_port("1438", 3, &port) == 0 && port == 143,
           "only n bytes are read");
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            port = 7;
            ok(str_parse_port(bad[i], strlen(bad[i]), &port) == -1
               && port == 7, "port \"%s\" refused, result untouched",
               bad[i]);
        }
    }
    return tap_done();
}
