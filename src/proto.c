/* proto.c - the table of protocol modules. */
#include <stddef.h>

#include "proto.h"

/* The module for a protocol. */
const struct proto_ops *
proto_ops_get(enum proto p)
{
    switch (p) {
    case PROTO_IMAP:
        return &imap_ops;
    case PROTO_POP3:
        return &pop3_ops;
    case PROTO_SMTP:
        return &smtp_ops;
    }
    return NULL;
}
