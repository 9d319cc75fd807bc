/*
 * fuzz_auth_file.c - libFuzzer target for the auth_file parser
 * (auth_file_parse) and the look-ups that do not run crypt(3): a fuzzed
 * file could name a bcrypt cost of 2^31, so PLAIN / LOGIN queries (which
 * hash) are left out; APOP, CRAM-MD5, EXTERNAL and none are made.
 *
 * Checks: a refused file has a message "fuzz:LINE: ..." or "fuzz: ...";
 * an OK result has a server and a port.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "auth_file.h"
#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One query, checked. */
static void
ask(const struct server_conf *sc, enum auth_method m, struct str user)
{
    struct auth_request rq;
    struct auth_result r;

    memset(&rq, 0, sizeof(rq));
    rq.method = m;
    rq.protocol = sc->protocol;
    rq.user = user;
    rq.pass = STR_LIT("b913a602c7eda7a495b4e6e7334d3890");
    rq.salt = STR_LIT("<1896.697170952@postoffice.reston.mci.net>");
    rq.ssl = 1;
    rq.ssl_verify = "SUCCESS";
    auth_file_query(sc, &rq, &r);
    if (r.status == AUTH_OK && (r.server == NULL || r.port == 0)) {
        abort();
    }
    auth_result_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct server_conf sc;
    char err[512];
    const uint8_t *sp;
    struct str first;
    void *t;

    err[0] = '\0';
    t = auth_file_parse("fuzz", data, size, err, sizeof(err));
    if (t == NULL) {
        if (strncmp(err, "fuzz:", 5) != 0) {
            abort();
        }
        return 0;
    }
    memset(&sc, 0, sizeof(sc));
    sc.auth_file = "fuzz";
    sc.auth_file_data = t;
    sc.protocol = size > 0 ? (enum proto)(data[0] % 3) : PROTO_IMAP;

    /* the first word of the input is likely a user name */
    first.data = (unsigned char *)data;
    sp = memchr(data, ' ', size);
    first.len = sp != NULL ? (size_t)(sp - data) : size;

    ask(&sc, AUTH_METHOD_CRAM_MD5, first);
    ask(&sc, AUTH_METHOD_APOP, first);
    ask(&sc, AUTH_METHOD_EXTERNAL, first);
    ask(&sc, AUTH_METHOD_NONE, STR_LIT(""));
    ask(&sc, AUTH_METHOD_CRAM_MD5, STR_LIT("tim"));
    auth_file_free(t);
    return 0;
}
