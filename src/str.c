/*
 * str.c - sized strings, a text builder and the handling of secrets in
 * memory.
 * Touches secrets (mem_wipe, mem_eq_const); no locks.
 */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>

#include "str.h"

/* Case-insensitive compare of a slice with a C string. */
int
str_eq_ci(struct str s, const char *lit)
{
    size_t n = strlen(lit);

    return s.len == n && (n == 0 || strncasecmp((const char *)s.data, lit, n) == 0);
}

/* Exact compare of a slice with a C string. */
int
str_eq(struct str s, const char *lit)
{
    size_t n = strlen(lit);

    return s.len == n && (n == 0 || memcmp(s.data, lit, n) == 0);
}

/* A NUL-terminated heap copy, for library boundaries. */
char *
str_dup0(struct str s)
{
    char *p = malloc(s.len + 1);

    if (p == NULL) {
        return NULL;
    }
    if (s.len > 0) {
        memcpy(p, s.data, s.len);
    }
    p[s.len] = '\0';
    return p;
}

/* Replace *dst by a heap copy of src. */
int
str_set(struct str *dst, struct str src)
{
    str_wipe_free(dst);
    if (src.data == NULL) {
        return 0;
    }
    dst->data = malloc(src.len + 1);
    if (dst->data == NULL) {
        return -1;
    }
    memcpy(dst->data, src.data, src.len);
    dst->data[src.len] = '\0';
    dst->len = src.len;
    return 0;
}

/* Make a wire line safe to log. */
void
str_log_text(const unsigned char *p, size_t n, char *out, size_t outlen)
{
    size_t k = 0;

    if (outlen == 0) {
        return;
    }
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r')) {
        n--;
    }
    for (size_t i = 0; i < n && k + 1 < outlen; i++) {
        unsigned char c = p[i];

        if (c == '\r' || c == '\n') {
            out[k++] = '_';
        } else if (c < 0x20 || c == 0x7f) {
            out[k++] = '?';
        } else {
            out[k++] = (char)c;
        }
    }
    out[k] = '\0';
}

/* 1 if any byte could break a line-based protocol, a header or a log line. */
int
str_has_ctl(struct str s)
{
    for (size_t i = 0; i < s.len; i++) {
        if (s.data[i] == '\r' || s.data[i] == '\n' || s.data[i] == '\0') {
            return 1;
        }
    }
    return 0;
}

int
str_hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

const char *
str_capability_text_refused(const char *s)
{
    if (s[0] == '\0') {
        return "an empty capability";
    }
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) {
            return "not one line of printable ASCII";
        }
    }
    return NULL;
}

/* Overwrite memory in a way the optimiser must keep (a memset followed by
 * a compiler barrier: as fast as memset, never elided). */
void
mem_wipe(void *p, size_t len)
{
    if (p == NULL || len == 0) {
        return;
    }
    explicit_bzero(p, len);
}

/* Wipe and free a heap str. */
void
str_wipe_free(struct str *s)
{
    if (s->data != NULL) {
        mem_wipe(s->data, s->len);
        free(s->data);
    }
    *s = STR_NULL;
}

/* Compare without an early exit, so timing does not tell where they differ. */
int
mem_eq_const(const void *a, size_t alen, const void *b, size_t blen)
{
    const unsigned char *x = a, *y = b;
    unsigned char diff = (unsigned char)(alen != blen);
    size_t n = alen < blen ? alen : blen;

    for (size_t i = 0; i < n; i++) {
        diff |= x[i] ^ y[i];
    }
    return diff == 0;
}

/* A port from n decimal digits (see str.h). */
int
str_parse_port(const char *s, size_t n, unsigned short *port_r)
{
    unsigned long v = 0;

    if (n == 0 || n > 5) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v == 0 || v > 65535) {
        return -1;
    }
    *port_r = (unsigned short)v;
    return 0;
}

/* BSD strlcpy. */
size_t
str_lcpy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);

    if (size > 0) {
        size_t c = n < size - 1 ? n : size - 1;

        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}

/*
 * Make room for n more bytes and a NUL; 0, or -1 with failed set.  Grows
 * by doubling (from 128 bytes: a reply fits in one or two steps) so that
 * copying stays linear.  Not realloc: the old block may hold a password
 * and is wiped before it is freed.
 */
static int
builder_reserve(struct str_builder *b, size_t n)
{
    size_t size;
    char *p;

    if (b->failed) {
        return -1;
    }
    if (n > SIZE_MAX - 1 - b->len) {
        errno = ENOMEM;
        b->failed = 1;
        return -1;
    }
    if (b->len + n + 1 <= b->size) {
        return 0;
    }
    size = b->size ? b->size : 128;
    while (size < b->len + n + 1) {
        /* past half of SIZE_MAX, ask for exactly what is needed */
        size = size <= SIZE_MAX / 2 ? size * 2 : b->len + n + 1;
    }
    if ((p = malloc(size)) == NULL) {
        b->failed = 1;
        return -1;
    }
    if (b->data != NULL) {
        memcpy(p, b->data, b->len + 1);
        mem_wipe(b->data, b->size);
        free(b->data);
    }
    b->data = p;
    b->size = size;
    return 0;
}

/* Append n bytes of s. */
void
str_builder_add(struct str_builder *b, const char *s, size_t n)
{
    unsigned char *p = str_builder_extend(b, n);

    if (p != NULL && n > 0) {
        memcpy(p, s, n);
    }
}

/* Append a C string. */
void
str_builder_puts(struct str_builder *b, const char *s)
{
    str_builder_add(b, s, strlen(s));
}

/* Append n bytes for the caller to write; NULL after a failure. */
unsigned char *
str_builder_extend(struct str_builder *b, size_t n)
{
    unsigned char *p;

    if (builder_reserve(b, n) != 0) {
        return NULL;
    }
    p = (unsigned char *)b->data + b->len;
    b->len += n;
    b->data[b->len] = '\0';
    return p;
}

/* Wipe and free what b holds; b is empty again. */
void
str_builder_free(struct str_builder *b)
{
    if (b->data != NULL) {
        mem_wipe(b->data, b->size);
        free(b->data);
    }
    *b = STR_BUILDER_INIT;
}

/* Hand over the buffer as it is: no copy, the spare room stays allocated
 * (the texts are few, or short-lived). */
int
str_builder_take(struct str_builder *b, struct str *out)
{
    /* an empty builder has no buffer yet: make the "" callers may print */
    str_builder_add(b, "", 0);
    *out = STR_NULL;
    if (b->failed) {
        str_builder_free(b);
        return -1;
    }
    out->data = (unsigned char *)b->data;
    out->len = b->len;
    *b = STR_BUILDER_INIT;
    return 0;
}
