/*
 * fuzz_pop3.c - libFuzzer target for the POP3 command parser: the input is
 * fed whole and in chunks (size from its first byte), the two runs must
 * report the same commands, arguments must be slices of the line, and the
 * caller never has to hold more than one bounded line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3_parse.h"

#define MAX_LINES 4096

struct result {
    size_t n;
    int rc[MAX_LINES];
    enum pop3_cmd cmd[MAX_LINES];
    size_t nargs[MAX_LINES];
    size_t arglen[MAX_LINES][POP3_MAX_ARGS];
};

static void
run(const uint8_t *in, size_t len, size_t chunk, struct result *r)
{
    struct pop3_parser p;
    struct pop3_command cmd;
    unsigned char *buf = malloc(len + 1);
    size_t have = 0, fed = 0, used;
    enum pop3_parse_rc rc;

    if (buf == NULL) {
        abort();
    }
    r->n = 0;
    pop3_parser_init(&p);
    for (;;) {
        rc = pop3_parse(&p, buf, have, &cmd, &used);
        if (used > have) {
            abort();
        }
        if (rc == POP3_PARSE_OK) {
            if (used > POP3_LINE_MAX || buf[used - 1] != '\n'
                || cmd.nargs > POP3_MAX_ARGS) {
                abort();
            }
            for (size_t i = 0; i < cmd.nargs; i++) {
                if (cmd.args[i].len == 0 || cmd.args[i].data < buf
                    || cmd.args[i].data + cmd.args[i].len > buf + used
                    || memchr(cmd.args[i].data, '\n', cmd.args[i].len)
                    || memchr(cmd.args[i].data, '\r', cmd.args[i].len)
                    || memchr(cmd.args[i].data, '\0', cmd.args[i].len)) {
                    abort();
                }
            }
        }
        if (rc != POP3_PARSE_AGAIN && r->n < MAX_LINES) {
            r->rc[r->n] = rc;
            r->cmd[r->n] = rc == POP3_PARSE_OK ? cmd.cmd : POP3_CMD_NONE;
            r->nargs[r->n] = rc == POP3_PARSE_OK ? cmd.nargs : 0;
            for (size_t i = 0; i < POP3_MAX_ARGS; i++) {
                r->arglen[r->n][i] = (rc == POP3_PARSE_OK && i < cmd.nargs)
                                     ? cmd.args[i].len : 0;
            }
            r->n++;
        }
        memmove(buf, buf + used, have - used);
        have -= used;
        if (rc != POP3_PARSE_AGAIN) {
            continue;
        }
        /* an unfinished line is never longer than the bound */
        if (have > POP3_LINE_MAX) {
            abort();
        }
        if (fed == len) {
            break;
        }
        used = chunk < len - fed ? chunk : len - fed;
        memcpy(buf + have, in + fed, used);
        have += used;
        fed += used;
    }
    free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct result whole, parts;
    size_t chunk;

    if (size == 0) {
        return 0;
    }
    chunk = (data[0] % 16) + 1;
    data++;
    size--;
    run(data, size, size ? size : 1, &whole);
    run(data, size, chunk, &parts);
    if (whole.n != parts.n
        || memcmp(whole.rc, parts.rc, whole.n * sizeof(int)) != 0
        || memcmp(whole.cmd, parts.cmd, whole.n * sizeof(whole.cmd[0])) != 0
        || memcmp(whole.nargs, parts.nargs, whole.n * sizeof(size_t)) != 0
        || memcmp(whole.arglen, parts.arglen,
                  whole.n * sizeof(whole.arglen[0])) != 0) {
        abort();
    }
    return 0;
}
