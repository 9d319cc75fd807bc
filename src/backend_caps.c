/*
 * backend_caps.c - what each backend answered to postern's EHLO (SMTP:
 * the XCLIENT attributes it takes) or CAPA (POP3: PIPELINING), by
 * protocol and "host:port", for BACKEND_CAPS_TTL_MS.
 *
 * NGINX asks an SMTP backend with an EHLO on every login, only to learn
 * whether XCLIENT may be sent; and it waits for the answer to USER before
 * sending PASS to a POP3 backend, as if it could not know whether the
 * backend takes pipelined commands.  Both depend on the backend's software
 * and configuration, not on the client, so postern asks once and
 * remembers.  A wrong memory costs one login the long way (smtp_backend.c,
 * pop3.c).
 *
 * Locks: one mutex around the table; held for a compare per slot.
 */
#include <pthread.h>
#include <string.h>

#include "backend_caps.h"
#include "conn.h"
#include "str.h"

struct caps_slot {
    char upstream[ADDR_TEXT_LEN];       /* "" when free */
    enum proto proto;
    unsigned caps;
    msec_t learned;
};

static struct caps_slot slots[BACKEND_CAPS_SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The slot of (proto, upstream), or NULL (lock held). */
static struct caps_slot *
slot_find(enum proto proto, const char *upstream)
{
    for (size_t i = 0; i < BACKEND_CAPS_SLOTS; i++) {
        if (slots[i].upstream[0] != '\0' && slots[i].proto == proto
            && strcmp(slots[i].upstream, upstream) == 0) {
            return &slots[i];
        }
    }
    return NULL;
}

/* See backend_caps.h. */
int
backend_caps_get(enum proto proto, const char *upstream, msec_t now,
                 unsigned *caps_r)
{
    const struct caps_slot *sl;
    int known = 0;

    pthread_mutex_lock(&lock);
    sl = slot_find(proto, upstream);
    if (sl != NULL && now >= sl->learned
        && now - sl->learned < BACKEND_CAPS_TTL_MS) {
        *caps_r = sl->caps;
        known = 1;
    }
    pthread_mutex_unlock(&lock);
    return known;
}

/* See backend_caps.h. */
void
backend_caps_put(enum proto proto, const char *upstream, unsigned caps,
                 msec_t now)
{
    struct caps_slot *sl;

    /* one that fills a whole session.upstream may have been cut short to
     * fit, and be two backends' names: not kept */
    if (strlen(upstream) + 1 >= sizeof(slots[0].upstream)) {
        return;
    }
    pthread_mutex_lock(&lock);
    sl = slot_find(proto, upstream);
    for (size_t i = 0; sl == NULL && i < BACKEND_CAPS_SLOTS; i++) {
        if (slots[i].upstream[0] == '\0') {
            sl = &slots[i];
        }
    }
    if (sl == NULL) {
        /* full (many backends, or many names for one): each costs its
         * next login's question, nothing more */
        sl = &slots[0];
        for (size_t i = 1; i < BACKEND_CAPS_SLOTS; i++) {
            if (slots[i].learned < sl->learned) {
                sl = &slots[i];
            }
        }
    }
    str_lcpy(sl->upstream, upstream, sizeof(sl->upstream));
    sl->proto = proto;
    sl->caps = caps;
    sl->learned = now;
    pthread_mutex_unlock(&lock);
}
