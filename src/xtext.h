/*
 * xtext.h - RFC 3461 xtext, the encoding of XCLIENT attribute values
 * (Postfix XCLIENT_README): every byte outside '!'..'~', and '+' and '='
 * themselves, becomes "+XX" with two upper-case hex digits.
 *
 * After encoding no byte is below '!' or above '~': no CR, LF, NUL or space
 * can reach the backend's command line from a client value.
 * Pure functions over buffers; no state, no locks.
 */
#ifndef POSTERN_XTEXT_H
#define POSTERN_XTEXT_H

#include <stddef.h>

#include "str.h"

/* 1 if the byte is written as "+XX". */
int xtext_byte_escaped(unsigned char c);

/* Length of the encoded form of s (no NUL). */
size_t xtext_encoded_len(struct str s);

/* Encode s into dst, which has xtext_encoded_len(s) bytes; no NUL is
 * written.  Returns the length written. */
size_t xtext_encode(struct str s, char *dst);

/* Decode xtext in place into dst (at least s.len bytes; may be s.data).
 * 0 with *len_r, -1 when s is not valid xtext (a bad "+XX", a byte that
 * should have been encoded). */
int xtext_decode(struct str s, unsigned char *dst, size_t *len_r);

#endif
