/*
 * auth_file.h - the built-in user file, beyond the auth.h contract: a
 * parser over a buffer (for unit and fuzz tests) and a look-up.
 *
 * File format, one user a line:
 *
 *     NAME HASH SERVER[:PORT] [BACKEND-USER]
 *
 * fields separated by blanks; '#' starts a comment line; blank lines are
 * skipped.  HASH is a crypt(3) string ("$y$...", "$6$...", "$2b$...") or
 * "{PLAIN}secret" (needed for cram-md5 and apop, which must know the
 * secret; the secret cannot hold blanks).  SERVER is an IPv4 address, a
 * host name or a bracketed IPv6 address; PORT defaults to the protocol's
 * standard port.  BACKEND-USER, when given, replaces the login towards the
 * backend.  NAME "*" is not a user: it names the backend for SMTP sessions
 * without AUTH (smtp_auth "none"); its HASH is not checked.
 */
#ifndef POSTERN_AUTH_FILE_H
#define POSTERN_AUTH_FILE_H

#include <stddef.h>

#define AUTH_FILE_MAX_LINE 4096

/* Parse text (name is the file name for messages); the table or NULL with
 * "NAME:LINE: what is wrong" in err. */
void *auth_file_parse(const char *name, const unsigned char *text,
                      size_t len, char *err, size_t errlen);

/* Number of entries (for tests). */
size_t auth_file_count(const void *table);

#endif
