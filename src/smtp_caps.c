/*
 * smtp_caps.c - the XCLIENT attributes each SMTP backend offered to
 * postern's EHLO, by the backend's "host:port", for SMTP_CAPS_TTL_MS.
 *
 * NGINX asks with an EHLO on every login, only to learn whether XCLIENT
 * may be sent; the answer depends on the backend's configuration (its
 * authorized XCLIENT hosts, its version), not on the client, so postern
 * asks once and then sends XCLIENT right after the greeting, as Postfix
 * accepts it.  A wrong memory costs one refused XCLIENT: smtp_backend.c
 * then goes the long way, and a backend that refused is asked first for
 * SMTP_CAPS_TTL_MS.
 *
 * Locks: one mutex around the table; held for a string compare per slot.
 */
#include <pthread.h>
#include <string.h>

#include "conn.h"
#include "smtp_caps.h"
#include "str.h"

struct caps_slot {
    char upstream[ADDR_TEXT_LEN];       /* "" when free */
    unsigned attrs;
    int ehlo_first;             /* it refused XCLIENT before EHLO */
    msec_t learned;
};

static struct caps_slot slots[SMTP_CAPS_SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The slot of upstream, or NULL (lock held).  A name too long for a slot
 * is never remembered. */
static struct caps_slot *
slot_find(const char *upstream)
{
    for (size_t i = 0; i < SMTP_CAPS_SLOTS; i++) {
        if (slots[i].upstream[0] != '\0'
            && strcmp(slots[i].upstream, upstream) == 0) {
            return &slots[i];
        }
    }
    return NULL;
}

/* Whether sl was learned within the TTL before now. */
static int
slot_fresh(const struct caps_slot *sl, msec_t now)
{
    return now >= sl->learned && now - sl->learned < SMTP_CAPS_TTL_MS;
}

/* See smtp_caps.h. */
int
smtp_caps_get(const char *upstream, msec_t now, unsigned *attrs_r)
{
    const struct caps_slot *sl;
    int known = 0;

    pthread_mutex_lock(&lock);
    sl = slot_find(upstream);
    if (sl != NULL && slot_fresh(sl, now) && !sl->ehlo_first) {
        *attrs_r = sl->attrs;
        known = 1;
    }
    pthread_mutex_unlock(&lock);
    return known;
}

/* The slot for upstream: its own, a free one, or the one learned longest
 * ago (lock held; upstream fits a slot). */
static struct caps_slot *
slot_take(const char *upstream)
{
    struct caps_slot *sl = slot_find(upstream);

    for (size_t i = 0; sl == NULL && i < SMTP_CAPS_SLOTS; i++) {
        if (slots[i].upstream[0] == '\0') {
            sl = &slots[i];
        }
    }
    if (sl == NULL) {
        /* full (many backends, or many names for one): each costs its
         * first login's EHLO, nothing more */
        sl = &slots[0];
        for (size_t i = 1; i < SMTP_CAPS_SLOTS; i++) {
            if (slots[i].learned < sl->learned) {
                sl = &slots[i];
            }
        }
    }
    str_lcpy(sl->upstream, upstream, sizeof(sl->upstream));
    return sl;
}

/* See smtp_caps.h. */
void
smtp_caps_put(const char *upstream, unsigned attrs, msec_t now)
{
    struct caps_slot *sl;

    if (strlen(upstream) >= sizeof(slots[0].upstream)) {
        return;
    }
    pthread_mutex_lock(&lock);
    sl = slot_find(upstream);
    if (sl == NULL || !sl->ehlo_first || !slot_fresh(sl, now)) {
        sl = slot_take(upstream);
        sl->attrs = attrs;
        sl->ehlo_first = 0;
        sl->learned = now;
    }
    pthread_mutex_unlock(&lock);
}

/* See smtp_caps.h. */
void
smtp_caps_refused(const char *upstream, msec_t now)
{
    struct caps_slot *sl;

    if (strlen(upstream) >= sizeof(slots[0].upstream)) {
        return;
    }
    pthread_mutex_lock(&lock);
    sl = slot_take(upstream);
    sl->attrs = 0;
    sl->ehlo_first = 1;
    sl->learned = now;
    pthread_mutex_unlock(&lock);
}
