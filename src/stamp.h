/*
 * stamp.h - the challenge of an APOP greeting or a CRAM-MD5 exchange,
 * "<RANDOM.TIME@server_name>" (RFC 1939 section 7, RFC 2195).  It is kept
 * as its two numbers, so that it can be written again: the acceptor puts a
 * POP3 client's stamp in the greeting it sends, and the worker that takes
 * the session later writes the same text to check the APOP digest with.
 */
#ifndef POSTERN_STAMP_H
#define POSTERN_STAMP_H

#include <stddef.h>

#include "conf.h"

struct stamp {
    unsigned long long rnd;
    long long time;              /* 0: not made yet */
};

/* "<", two 20-digit numbers and ".", "@", the longest server_name, ">",
 * NUL */
#define STAMP_MAX (1 + 20 + 1 + 20 + 1 + SERVER_NAME_MAX + 1 + 1)

/* A fresh stamp: a random number and the time.  0 / -1 (no random). */
int stamp_make(struct stamp *st);

/* Write st for server_name into buf as the challenge's text; its length,
 * or 0 when it does not fit in cap bytes with its NUL. */
size_t stamp_format(const struct stamp *st, const char *server_name,
                    char *buf, size_t cap);

#endif
