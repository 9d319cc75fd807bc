/*
 * fuzz_imap.c - libFuzzer target for imap_parse.c.
 *
 * The input is parsed as a stream of pipelined commands twice: fed whole,
 * and fed in chunks whose sizes come from the first input byte, with the
 * unparsed bytes moved to a fresh buffer between calls (as buf_compact
 * does).  Both runs must see the same events (OK with the same tag, name
 * and arguments; CONTINUE; INVALID; a name starting with X is refused at
 * CONTINUE, as imap.c refuses), and every result must respect the
 * parser's bounds.  Any difference or violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"

#define FUZZ_LIMIT 512
#define EVENTS_MAX 65536

/* A digest of one run: events appended as bytes. */
struct trace {
    unsigned char *d;
    size_t n, size;
};

/* Append bytes to a trace (bounded; a full trace stops growing). */
static void
trace_add(struct trace *t, const void *p, size_t len)
{
    if (len > t->size - t->n) {
        len = t->size - t->n;
    }
    memcpy(t->d + t->n, p, len);
    t->n += len;
}

/* Check a result and write it into the trace. */
static void
event(struct trace *t, enum imap_parse_rc rc, const struct imap_parser *p,
      const unsigned char *data, size_t have)
{
    unsigned char c = (unsigned char)rc;

    trace_add(t, &c, 1);
    if (rc == IMAP_PARSE_CONTINUE) {
        /* the name is readable, for a caller that refuses here */
        if (p->name.len == 0 || p->name.len > IMAP_NAME_MAX
            || p->name.data < data || p->name.data + p->name.len > data + have)
        {
            abort();
        }
        return;
    }
    if (p->tag_len > IMAP_TAG_MAX || strlen(p->tag) != p->tag_len
        || p->consumed > have || p->consumed > FUZZ_LIMIT
        || (p->consumed == 0 && !p->fatal))
    {
        abort();
    }
    trace_add(t, p->tag, p->tag_len + 1);
    if (rc == IMAP_PARSE_INVALID) {
        c = (unsigned char)p->fatal;
        trace_add(t, &c, 1);
        return;
    }
    if (p->nargs > IMAP_ARGS_MAX || p->name.len == 0
        || p->name.len > IMAP_NAME_MAX || p->name.data < data
        || p->name.data + p->name.len > data + p->consumed)
    {
        abort();
    }
    trace_add(t, p->name.data, p->name.len);
    for (size_t i = 0; i < p->nargs; i++) {
        const struct str *s = &p->args[i].s;

        if (s->data < data || s->data + s->len > data + p->consumed) {
            abort();
        }
        c = (unsigned char)p->args[i].type;
        trace_add(t, &c, 1);
        trace_add(t, &s->len, sizeof(s->len));
        trace_add(t, s->data, s->len);
    }
}

/* Parse in[0..len) delivered chunk bytes at a time. */
static void
run(const uint8_t *in, size_t len, size_t chunk, struct trace *t)
{
    unsigned char *buf = malloc(len + 1), *next;
    struct imap_parser p;
    size_t have = 0, fed = 0, n;
    enum imap_parse_rc rc;

    imap_parser_init(&p, FUZZ_LIMIT);
    for (;;) {
        n = len - fed < chunk ? len - fed : chunk;
        memcpy(buf + have, in + fed, n);
        have += n;
        fed += n;
        for (;;) {
            rc = imap_parse(&p, buf, have);
            if (rc == IMAP_PARSE_AGAIN) {
                break;
            }
            event(t, rc, &p, buf, have);
            if (rc == IMAP_PARSE_CONTINUE) {
                if (p.name.data[0] != 'X') {
                    continue;
                }
                /* as imap.c refuses what it will not run: names with X */
                imap_parse_refuse(&p);
                rc = IMAP_PARSE_INVALID;
                event(t, rc, &p, buf, have);
            }
            if (rc == IMAP_PARSE_INVALID && p.fatal) {
                goto out;
            }
            memmove(buf, buf + p.consumed, have - p.consumed);
            have -= p.consumed;
        }
        if (fed == len) {
            break;
        }
        next = malloc(len + 1);
        memcpy(next, buf, have);
        free(buf);
        buf = next;
    }
out:
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char d1[EVENTS_MAX], d2[EVENTS_MAX];
    struct trace t1 = { d1, 0, sizeof(d1) }, t2 = { d2, 0, sizeof(d2) };
    size_t chunk;

    if (size < 1) {
        return 0;
    }
    chunk = (data[0] % 17) + 1;
    data++;
    size--;

    run(data, size, size ? size : 1, &t1);
    run(data, size, chunk, &t2);
    if (t1.n != t2.n || memcmp(t1.d, t2.d, t1.n) != 0) {
        abort();
    }
    return 0;
}
