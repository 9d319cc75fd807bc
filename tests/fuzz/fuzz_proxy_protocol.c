/*
 * fuzz_proxy_protocol.c - libFuzzer target for proxy_protocol_parse().
 *
 * Besides "no crash, no out-of-bounds read", it checks the parser's
 * contract on every input and aborts when it breaks:
 * - an OK header lies inside the input and every shorter prefix says AGAIN;
 * - an INVALID prefix stays INVALID when more bytes follow;
 * - addresses of an OK header, written back as v1, parse to the same ones.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "proxy_protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Same address and port (the parts v1 can carry). */
static int
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) {
        return 0;
    }
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;

        return x->sin_port == y->sin_port
            && memcmp(&x->sin_addr, &y->sin_addr, 4) == 0;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;

        return x->sin6_port == y->sin6_port
            && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_header h, h2;
    const char *why = NULL;
    char v1[PROXY_V1_MAX + 1];
    size_t k, step;
    int rc, rk, n, seen_invalid = 0;

    rc = proxy_protocol_parse(data, size, &h, &why);
    if (rc == PROXY_INVALID && (why == NULL || *why == '\0')) {
        abort();
    }
    if (rc == PROXY_OK && (h.len == 0 || h.len > size
                           || h.len > PROXY_MAX_HEADER))
    {
        abort();
    }

    /* prefixes: a sample of them for long inputs, to keep runs fast */
    step = size > 512 ? size / 256 : 1;
    for (k = 0; k < size; k += step) {
        rk = proxy_protocol_parse(data, k, &h2, NULL);
        if (rc == PROXY_OK && k < h.len && rk != PROXY_AGAIN) {
            abort();
        }
        if (rc == PROXY_OK && k >= h.len
            && (rk != PROXY_OK || h2.len != h.len))
        {
            abort();
        }
        if (rc == PROXY_AGAIN && rk != PROXY_AGAIN) {
            abort();
        }
        if (rc == PROXY_INVALID && (rk == PROXY_OK
                                    || (seen_invalid && rk != PROXY_INVALID)))
        {
            abort();
        }
        seen_invalid |= rk == PROXY_INVALID;
    }

    if (rc == PROXY_OK && h.kind == PROXY_ADDR) {
        n = proxy_protocol_v1_build((struct sockaddr *)&h.src,
                                    (struct sockaddr *)&h.dst, v1,
                                    sizeof(v1));
        if (n <= 0) {
            abort();
        }
        if (proxy_protocol_parse((const unsigned char *)v1, (size_t)n, &h2,
                                 NULL) != PROXY_OK
            || h2.len != (size_t)n || h2.kind != PROXY_ADDR
            || !same_addr(&h.src, &h2.src) || !same_addr(&h.dst, &h2.dst))
        {
            abort();
        }
    }
    return 0;
}
