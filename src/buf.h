/*
 * buf.h - a fixed-size byte buffer with a consumed start and a filled end.
 *
 *   data[0 .. pos)     consumed, may be reclaimed by buf_compact()
 *   data[pos .. last)  bytes read and not yet consumed
 *   data[last .. size) free space
 *
 * The size is fixed at creation: it is the bound on a line or command.
 */
#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H

#include <stddef.h>

struct buf {
    unsigned char *data;
    size_t size;
    size_t pos;
    size_t last;
};

int buf_init(struct buf *b, size_t size);      /* 0 or -1 (ENOMEM) */
void buf_free(struct buf *b);                  /* wipes the contents */
void buf_compact(struct buf *b);               /* move [pos,last) to 0 */
void buf_reset(struct buf *b);                 /* drop all data, wipe */
/* Take the next LF-terminated line (*line_r, *len_r: a slice of b, with
 * its LF; consumed): 1; 0 when none is whole yet (*scanned: the bytes
 * already looked at, 0 at first, passed again next time); -1 with errno
 * ENOBUFS when b is full without one. */
int buf_take_line(struct buf *b, size_t *scanned, unsigned char **line_r,
                  size_t *len_r);

static inline size_t buf_len(const struct buf *b) { return b->last - b->pos; }
static inline size_t buf_room(const struct buf *b) { return b->size - b->last; }
static inline unsigned char *buf_head(const struct buf *b) { return b->data + b->pos; }
static inline void buf_consume(struct buf *b, size_t n) { b->pos += n; }

#endif
