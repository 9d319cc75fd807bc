/*
 * str.h - sized strings for wire data.
 *
 * Wire data is never assumed to be NUL-terminated: arguments are slices of
 * the read buffer.  Convert with str_dup0() only at a libc / GnuTLS /
 * libconfig boundary.
 */
#ifndef POSTERN_STR_H
#define POSTERN_STR_H

#include <stddef.h>
#include <string.h>

struct str {
    size_t len;
    unsigned char *data;
};

#define STR_NULL ((struct str){ 0, NULL })
#define STR_LIT(s) ((struct str){ sizeof(s) - 1, (unsigned char *)(s) })

/* Case-insensitive compare of a slice with a C string literal. */
int str_eq_ci(struct str s, const char *lit);

/* Exact compare of a slice with a C string. */
int str_eq(struct str s, const char *lit);

/* A new NUL-terminated heap copy of s; NULL on allocation failure. */
char *str_dup0(struct str s);

/* Set *dst to a NUL-terminated heap copy of src (STR_NULL when src.data is
 * NULL); what *dst held is wiped and freed first.  0 / -1 ENOMEM (then
 * *dst is STR_NULL). */
int str_set(struct str *dst, struct str src);

/* A wire line made fit for a log line: the line end dropped, CR and LF
 * inside it shown as '_', other control bytes as '?'; cut to outlen - 1. */
void str_log_text(const unsigned char *p, size_t n, char *out, size_t outlen);

/* 1 if s contains CR, LF or NUL (unfit for a header, log or command line). */
int str_has_ctl(struct str s);

/* The value of a hex digit, either case; -1 for any other byte. */
int str_hex_digit(unsigned char c);

/* Why s may not be a capability line (POP3 CAPA, SMTP EHLO): "an empty
 * capability", "not one line of printable ASCII"; NULL when it may. */
const char *str_capability_text_refused(const char *s);

/* Overwrite memory so that the compiler cannot drop the store (secrets). */
void mem_wipe(void *p, size_t len);

/* Wipe and free a heap str; leaves it STR_NULL. */
void str_wipe_free(struct str *s);

/* Constant-time comparison of two byte strings: 1 if equal. */
int mem_eq_const(const void *a, size_t alen, const void *b, size_t blen);

/* A TCP/UDP port, 1..65535, from exactly n bytes of decimal digits (no
 * sign, no spaces): 0, or -1 with *port_r untouched. */
int str_parse_port(const char *s, size_t n, unsigned short *port_r);

/* strlcpy: copy at most size-1 bytes, always terminate; returns strlen(src).
 * Callers check `>= size` for truncation. */
size_t str_lcpy(char *dst, const char *src, size_t size);

/* A growing heap text: the replies built at configuration time, the auth
 * service request.  Adds never fail outright: the first failure is
 * remembered in failed, so the caller checks once, at str_builder_take().
 * Growing leaves no copy behind (the old block is wiped), so a builder may
 * hold a password; str_builder_free() wipes too. */
struct str_builder {
    char *data;
    size_t len, size;
    int failed;
};

/* An empty builder; nothing is allocated before the first add. */
#define STR_BUILDER_INIT ((struct str_builder){ NULL, 0, 0, 0 })

/* Append n bytes of s; on ENOMEM (or a length that would overflow) set
 * failed and ignore this and every later add. */
void str_builder_add(struct str_builder *b, const char *s, size_t n);

/* Append the C string s. */
void str_builder_puts(struct str_builder *b, const char *s);

/* Append n bytes the caller then writes (exactly n); NULL once failed. */
unsigned char *str_builder_extend(struct str_builder *b, size_t n);

/* Move the text into *out (heap, NUL-terminated after out->len bytes, so
 * also a C string; "" when nothing was added) and reset b for reuse.
 * 0, or -1 if an add failed: then *out is STR_NULL and the text freed. */
int str_builder_take(struct str_builder *b, struct str *out);

/* Wipe and free the text; b is empty and reusable. */
void str_builder_free(struct str_builder *b);

#endif
