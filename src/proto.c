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

/* See proto.h. */
const char *
proto_early_greeting(const struct server_conf *sc, const struct listen_conf *lc,
                     size_t *len)
{
    if (sc->ssl || lc->ssl || lc->proxy_protocol) {
        return NULL;
    }
    return proto_ops_get(sc->protocol)->fixed_greeting(sc, len);
}
