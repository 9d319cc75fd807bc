/*
 * backend_caps.h - what each backend offered to postern's EHLO or CAPA,
 * kept for a while so that later logins to it can skip the question: one
 * round trip fewer per login (smtp_backend.c: XCLIENT right after the
 * greeting; pop3.c: USER and PASS in one write).
 */
#ifndef POSTERN_BACKEND_CAPS_H
#define POSTERN_BACKEND_CAPS_H

#include "clock.h"
#include "conf.h"

/* How long an answer is believed without asking again.  A backend that
 * changed meanwhile refuses what the answer allowed, and that login goes
 * the long way (each protocol's code says how). */
#define BACKEND_CAPS_TTL_MS (60 * 1000)
/* Backends remembered at once; the least recently learned goes first. */
#define BACKEND_CAPS_SLOTS 64

/* What upstream ("host:port", as session.upstream) of protocol proto
 * answered within BACKEND_CAPS_TTL_MS before now: 1 with *caps_r (the
 * protocol's own bits), 0 when not known. */
int backend_caps_get(enum proto proto, const char *upstream, msec_t now,
                     unsigned *caps_r);
/* Remember caps for upstream as of now.  A name of ADDR_TEXT_LEN - 1
 * bytes or more (which may have been cut short) is not remembered. */
void backend_caps_put(enum proto proto, const char *upstream, unsigned caps,
                      msec_t now);

#endif
