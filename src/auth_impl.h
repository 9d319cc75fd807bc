/*
 * auth_impl.h - helpers shared by auth.c, auth_http.c and auth_file.c only
 * (not part of the auth.h contract).
 */
#ifndef POSTERN_AUTH_IMPL_H
#define POSTERN_AUTH_IMPL_H

#include "auth.h"

/* Empty result: TEMPFAIL, wait -1, nothing allocated. */
void auth_result_init(struct auth_result *r);

/* Set status TEMPFAIL and a formatted r->log_reason (replacing any). */
void auth_result_tempfail(struct auth_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Set r->log_reason without changing the status. */
void auth_result_reason(struct auth_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A heap copy of bytes as a struct str (data NUL-terminated too);
 * -1 when out of memory. */
int auth_str_copy(struct str *dst, const unsigned char *p, size_t len);

/* The standard port of a protocol: 143, 110, 25. */
unsigned short auth_default_port(enum proto p);

#endif
