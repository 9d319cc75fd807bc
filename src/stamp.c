/* stamp.c - APOP and CRAM-MD5 challenges (see stamp.h). */
#include <stdio.h>
#include <time.h>
#include <gnutls/crypto.h>

#include "stamp.h"

/* See stamp.h.  The random part is a nonce, not a key: the challenge is
 * sent in the clear and only has to differ from every earlier one. */
int
stamp_make(struct stamp *st)
{
    if (gnutls_rnd(GNUTLS_RND_NONCE, &st->rnd, sizeof(st->rnd)) != 0) {
        return -1;
    }
    st->time = (long long)time(NULL);
    if (st->time == 0) {
        st->time = 1;            /* 0 means "not made" */
    }
    return 0;
}

/* See stamp.h. */
size_t
stamp_format(const struct stamp *st, const char *server_name, char *buf,
             size_t cap)
{
    int n = snprintf(buf, cap, "<%llu.%lld@%s>", st->rnd, st->time,
                     server_name);

    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}
