/*
 * fuzz_smtp.c - libFuzzer target for smtp_parse.c and xtext.c.
 *
 * Besides "no crash, no out-of-bounds read", it checks the contracts on
 * every input and aborts when one breaks:
 * - commands: the same results fed whole and byte by byte; a parsed line
 *   lies inside the input, and no argument or text holds CR, LF or NUL;
 * - replies: the same result fed whole and byte by byte; an OK reply lies
 *   inside the input and its lines can be walked;
 * - xtext: the encoding holds only '!'..'~' and decodes back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"
#include "xtext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* No control byte but TAB in s, and s inside [base, base + size). */
static void
check_slice(struct str s, const unsigned char *base, size_t size)
{
    if (s.len == 0) {
        return;
    }
    if (s.data < base || s.data + s.len > base + size) {
        abort();
    }
    /* no control byte but TAB gets through (they would reach log lines
     * and the auth service's Auth-SMTP-* headers) */
    for (size_t i = 0; i < s.len; i++) {
        if ((s.data[i] < 0x20 && s.data[i] != '\t') || s.data[i] == 0x7f) {
            abort();
        }
    }
}

/* Every line of the input, whole and byte by byte. */
static void
fuzz_commands(unsigned char *buf, size_t size)
{
    struct smtp_cmd_parser pw, pb;
    struct smtp_cmd cw, cb;
    size_t pos = 0;

    smtp_cmd_parser_init(&pw);
    smtp_cmd_parser_init(&pb);
    while (pos < size) {
        enum smtp_parse_rc rw = smtp_cmd_parse(&pw, buf + pos, size - pos, &cw);
        enum smtp_parse_rc rb = SMTP_PARSE_AGAIN;
        size_t have;

        for (have = 1; have <= size - pos; have++) {
            rb = smtp_cmd_parse(&pb, buf + pos, have, &cb);
            if (rb != SMTP_PARSE_AGAIN) {
                break;
            }
        }
        if (rw != rb) {
            abort();
        }
        if (rw == SMTP_PARSE_AGAIN) {
            return;
        }
        if (cw.len != cb.len || cw.len == 0 || cw.len > size - pos
            || buf[pos + cw.len - 1] != '\n') {
            abort();
        }
        if (rw == SMTP_PARSE_OK) {
            if (cw.nargs != cb.nargs || cw.nargs > SMTP_ARGS_MAX
                || cw.verb.len == 0 || cw.verb.len > SMTP_VERB_MAX
                || cw.text.len != cb.text.len) {
                abort();
            }
            check_slice(cw.verb, buf + pos, cw.len);
            check_slice(cw.text, buf + pos, cw.len);
            for (size_t i = 0; i < cw.nargs; i++) {
                check_slice(cw.args[i], buf + pos, cw.len);
                if (cw.args[i].len == 0 || cw.args[i].len != cb.args[i].len
                    || memchr(cw.args[i].data, ' ', cw.args[i].len) != NULL) {
                    abort();
                }
            }
        }
        pos += cw.len;
    }
}

/* One reply from the start of the input. */
static void
fuzz_reply(unsigned char *buf, size_t size)
{
    struct smtp_reply_parser pw, pb;
    struct smtp_reply rw, rb;
    enum smtp_parse_rc cw, cb = SMTP_PARSE_AGAIN;
    struct str line;
    size_t off = 0, lines = 0;
    unsigned attrs;

    smtp_reply_parser_init(&pw);
    smtp_reply_parser_init(&pb);
    cw = smtp_reply_parse(&pw, buf, size, &rw);
    for (size_t have = 1; have <= size; have++) {
        cb = smtp_reply_parse(&pb, buf, have, &rb);
        if (cb != SMTP_PARSE_AGAIN) {
            break;
        }
    }
    if (size > 0 && cw != cb) {
        abort();
    }
    if (cw != SMTP_PARSE_OK) {
        return;
    }
    if (rw.len != rb.len || rw.code != rb.code || rw.nlines != rb.nlines
        || rw.len == 0 || rw.len > size || rw.code < 100 || rw.code > 599
        || rw.nlines > SMTP_REPLY_LINES_MAX) {
        abort();
    }
    while (smtp_reply_next_line(&rw, &off, &line)) {
        if (++lines > rw.nlines) {
            abort();
        }
    }
    if (lines != rw.nlines) {
        abort();
    }
    (void)smtp_ehlo_xclient(&rw, &attrs);
}

/* xtext round trip. */
static void
fuzz_xtext(const uint8_t *data, size_t size)
{
    struct str in = { size, (unsigned char *)data };
    size_t elen = xtext_encoded_len(in), dlen;
    char *enc = malloc(elen + 1);
    unsigned char *dec = malloc(elen + 1);

    if (enc == NULL || dec == NULL) {
        abort();
    }
    if (xtext_encode(in, enc) != elen) {
        abort();
    }
    for (size_t i = 0; i < elen; i++) {
        if ((unsigned char)enc[i] < '!' || (unsigned char)enc[i] > '~'
            || enc[i] == '=') {
            abort();
        }
    }
    if (xtext_decode((struct str){ elen, (unsigned char *)enc }, dec, &dlen)
        != 0 || dlen != size || (size > 0 && memcmp(dec, data, size) != 0)) {
        abort();
    }
    /* decoding arbitrary input must stay in bounds */
    (void)xtext_decode(in, dec, &dlen);
    free(enc);
    free(dec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exactly sized copy, so that any read past the end is seen */
    unsigned char *buf = malloc(size > 0 ? size : 1);

    if (buf == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(buf, data, size);
    }
    fuzz_commands(buf, size);
    fuzz_reply(buf, size);
    free(buf);
    if (size <= 4096) {
        fuzz_xtext(data, size);
    }
    return 0;
}
