/*
 * smtp_caps.h - what each SMTP backend offered to postern's EHLO, kept for
 * a while so that later logins to it can send XCLIENT straight after the
 * greeting: one round trip fewer per login (smtp_backend.c).
 */
#ifndef POSTERN_SMTP_CAPS_H
#define POSTERN_SMTP_CAPS_H

#include "clock.h"

/* How long what a backend offered is believed without asking again, and
 * how long one that refused XCLIENT before EHLO is asked first.  A backend
 * that stopped offering XCLIENT meanwhile refuses it, and that login goes
 * on the long way (EHLO first). */
#define SMTP_CAPS_TTL_MS (60 * 1000)
/* Backends remembered at once; the least recently learned goes first. */
#define SMTP_CAPS_SLOTS 64

/* The XCLIENT attributes (SMTP_XCLIENT_*) upstream ("host:port", as
 * session.upstream) offered within SMTP_CAPS_TTL_MS before now: 1 with
 * *attrs_r set; 0 when not known, or when upstream refused XCLIENT before
 * EHLO within that time. */
int smtp_caps_get(const char *upstream, msec_t now, unsigned *attrs_r);
/* Remember what upstream offered to EHLO at now (a refusal remembered
 * within SMTP_CAPS_TTL_MS stands). */
void smtp_caps_put(const char *upstream, unsigned attrs, msec_t now);
/* Remember that upstream refused XCLIENT before EHLO at now. */
void smtp_caps_refused(const char *upstream, msec_t now);

#endif
