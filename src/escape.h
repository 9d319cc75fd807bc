/*
 * escape.h - making client bytes safe for an HTTP header line.
 *
 * escape_mail_auth() escapes exactly the bytes NGINX escapes in Auth-User
 * and Auth-Pass (its NGX_ESCAPE_MAIL_AUTH table): the controls 0x00-0x1f,
 * space and '%', each as "%XX" in upper-case hex.  Every other byte,
 * DEL and non-ASCII included, is passed as it is, so an auth service
 * written for NGINX decodes postern's requests the same way.  After
 * escaping no CR, LF or NUL is left: no byte can end the header line or
 * start a new one.
 *
 * Pure functions over buffers; no state, no locks.
 */
#ifndef POSTERN_ESCAPE_H
#define POSTERN_ESCAPE_H

#include <stddef.h>

#include "str.h"

/* 1 if the byte is escaped by escape_mail_auth(). */
int escape_mail_auth_byte(unsigned char c);

/* Length of the escaped form of s (s.len when nothing needs escaping). */
size_t escape_mail_auth_len(struct str s);

/* Write the escaped form of s into dst, which has escape_mail_auth_len(s)
 * bytes; no NUL is written.  Returns the length written. */
size_t escape_mail_auth(struct str s, char *dst);

/* 1 if the bytes hold no CR, LF or NUL: fit for a header, log or command
 * line as they are. */
int escape_is_clean(const unsigned char *p, size_t len);

/* A new NUL-terminated copy of s for a client reply or log line: every
 * control byte (< 0x20, 0x7f) becomes a space.  NULL when out of memory. */
char *escape_sanitized_dup(struct str s);

#endif
