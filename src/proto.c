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
                     struct stamp *st, char *buf, size_t cap, size_t *len,
                     msec_t *delay)
{
    if (sc->ssl || lc->ssl || lc->proxy_protocol) {
        return NULL;
    }
    *delay = sc->protocol == PROTO_SMTP ? sc->smtp_greeting_delay : 0;
    return proto_ops_get(sc->protocol)->greeting(sc, st, buf, cap, len);
}
