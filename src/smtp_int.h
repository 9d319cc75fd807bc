/*
 * smtp_int.h - private to the SMTP module: smtp.c (the client dialogue)
 * and smtp_backend.c (the login to the backend).
 */
#ifndef POSTERN_SMTP_INT_H
#define POSTERN_SMTP_INT_H

#include "proto.h"
#include "session.h"

/* The reply for an internal or upstream error, NGINX's */
#define SMTP_INTERNAL_ERROR   "451 4.3.2 Internal server error\r\n"

/* Send a NUL-terminated reply to the client; 0 / -1 (logged). */
int smtp_reply(struct session *s, const char *text);

/* Greeting, EHLO, XCLIENT / AUTH, the envelope: the backend is ready for
 * the relay (proto_ops.backend_login; see smtp_backend.c for the order). */
enum sess_rc smtp_backend_login(struct session *s);

#endif
