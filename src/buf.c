/*
 * buf.c - fixed-size byte buffers (see buf.h).  May hold secrets, so
 * everything that drops bytes wipes them.  No locks: one owner at a time.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "str.h"

/* Allocate a buffer of size bytes. */
int
buf_init(struct buf *b, size_t size)
{
    b->data = malloc(size);
    b->size = b->data != NULL ? size : 0;
    b->pos = b->last = 0;
    return b->data != NULL ? 0 : -1;
}

/* Wipe and free. */
void
buf_free(struct buf *b)
{
    if (b->data != NULL) {
        /* bytes past `last` were never written or were wiped on compact */
        mem_wipe(b->data, b->last);
        free(b->data);
    }
    b->data = NULL;
    b->size = b->pos = b->last = 0;
}

/* Move unconsumed bytes to the front to make room at the end. */
void
buf_compact(struct buf *b)
{
    size_t n = b->last - b->pos;

    if (b->pos == 0) {
        return;
    }
    if (n > 0) {
        memmove(b->data, b->data + b->pos, n);
    }
    /* the old bytes [n, last) are stale copies: wipe them */
    mem_wipe(b->data + n, b->pos);
    b->pos = 0;
    b->last = n;
}

/* Drop everything (and wipe what was there). */
void
buf_reset(struct buf *b)
{
    mem_wipe(b->data, b->last);
    b->pos = b->last = 0;
}

/* See buf.h. */
int
buf_take_line(struct buf *b, size_t *scanned, unsigned char **line_r,
              size_t *len_r)
{
    unsigned char *start = buf_head(b);
    unsigned char *lf = memchr(start + *scanned, '\n', buf_len(b) - *scanned);

    if (lf != NULL) {
        *line_r = start;
        *len_r = (size_t)(lf - start) + 1;
        buf_consume(b, *len_r);
        *scanned = 0;
        return 1;
    }
    *scanned = buf_len(b);
    if (buf_room(b) == 0 && b->pos == 0) {
        errno = ENOBUFS;
        return -1;
    }
    return 0;
}
