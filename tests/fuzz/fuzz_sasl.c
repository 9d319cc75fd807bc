/*
 * fuzz_sasl.c - libFuzzer target for the SASL decoders of sasl.c: strict
 * base64 (which must accept exactly the canonical encodings, so that
 * encode(decode(x)) == x), the PLAIN message and the CRAM-MD5 answer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"

/* Check what a PLAIN / CRAM-MD5 parse returns stays inside msg. */
static void
parse_both(struct str msg)
{
    struct str a, b;
    unsigned char *end = msg.data + msg.len;

    if (sasl_plain_parse(msg, &a, &b) == 0) {
        if (a.len == 0 || b.len == 0 || a.data < msg.data
            || a.data + a.len > end || b.data + b.len != end
            || memchr(b.data, '\0', b.len) != NULL) {
            abort();
        }
    }
    if (sasl_cram_parse(msg, &a, &b) == 0) {
        if (a.len == 0 || b.len != 32 || a.data != msg.data
            || b.data + b.len != end) {
            abort();
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *dec = malloc(size / 4 * 3 + 1);
    char *enc = malloc(base64_encoded_len(size) + 1);
    unsigned char *back = malloc(size + 3);
    size_t n, m;

    if (dec == NULL || enc == NULL || back == NULL) {
        goto done;
    }

    /* the input as base64 text */
    if (base64_decode(data, size, dec, &n) == 0) {
        if (n > size / 4 * 3) {
            abort();
        }
        m = base64_encode(dec, n, enc);
        if (m != size || memcmp(enc, data, size) != 0) {
            abort();                /* a non-canonical text was accepted */
        }
        parse_both((struct str){ n, dec });
    }

    /* the input as bytes: encoding round-trips */
    m = base64_encode(data, size, enc);
    if (m != base64_encoded_len(size)
        || base64_decode((unsigned char *)enc, m, back, &n) != 0
        || n != size || (size > 0 && memcmp(back, data, size) != 0)) {
        abort();
    }

    /* the input as a decoded message */
    if (size > 0) {
        memcpy(back, data, size);
        parse_both((struct str){ size, back });
    }

done:
    free(dec);
    free(enc);
    free(back);
    return 0;
}
