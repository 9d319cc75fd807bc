/*
 * imap_int.h - private to the IMAP module: imap.c (the client dialogue)
 * and imap_backend.c (the login to the backend).
 */
#ifndef POSTERN_IMAP_INT_H
#define POSTERN_IMAP_INT_H

#include "imap_parse.h"
#include "proto.h"
#include "session.h"

/* Per session (s->proto_state): the parser and the tag of the command
 * that logs in. */
struct imap_state {
    struct imap_parser parser;
    char tag[IMAP_TAG_MAX + 1];
};

/* The reply for an internal or upstream error; the session ends. */
void imap_internal_error(struct session *s);

/* Log in to the backend with the client's tag and relay its answer
 * (proto_ops.backend_login; see imap_backend.c). */
enum sess_rc imap_backend_login(struct session *s);

#endif
