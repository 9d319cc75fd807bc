/*
 * fuzz_http.c - libFuzzer target for the auth service response: the
 * resumable parser (http_parse.c), interim 1xx heads skipped as auth_http
 * reads them (http_parse_final), and the interpretation of the final head
 * (auth_http_interpret).  Like auth_http, it looks at no more than
 * HTTP_MAX_TOTAL bytes.
 *
 * Besides "no crash, no out-of-bounds read", it checks the contract and
 * aborts when it breaks:
 * - the input fed in pieces (sizes taken from the input) gives the same
 *   result, and the same final head, as fed whole;
 * - an OK head is final (not 1xx but 101), ends inside the input and
 *   within HTTP_MAX_TOTAL, and every header span lies inside it;
 * - an OK result has a server and a port; a refusal's message holds no
 *   control byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "auth_http.h"
#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct http_response whole, piece;

/* Interpret for one kind of request and check the result. */
static void
check_result(const struct http_response *hr, const uint8_t *data,
             enum auth_method m, enum proto p)
{
    struct auth_request rq;
    struct auth_result r;
    size_t i;

    memset(&rq, 0, sizeof(rq));
    rq.method = m;
    rq.protocol = p;
    rq.user = STR_LIT("user");
    rq.pass = STR_LIT("pass");
    memset(&r, 0, sizeof(r));
    r.status = AUTH_TEMPFAIL;
    r.wait = -1;
    (void)auth_http_interpret(hr, data, &rq, "127.0.0.1:9000", &r);
    if (r.status == AUTH_OK && (r.server == NULL || r.port == 0)) {
        abort();
    }
    if (r.status == AUTH_FAIL) {
        if (r.message == NULL) {
            abort();
        }
        for (i = 0; r.message[i]; i++) {
            if ((unsigned char)r.message[i] < 0x20
                || r.message[i] == 0x7f) {
                abort();
            }
        }
    }
    if (r.status == AUTH_TEMPFAIL && hr->done == HTTP_PARSE_INVALID
        && r.log_reason == NULL) {
        abort();
    }
    auth_result_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum http_parse_rc a, b = HTTP_PARSE_AGAIN;
    size_t len = 0, step, i, k = 0, head_a = 0, head_b = 0;

    if (size > HTTP_MAX_TOTAL) {
        size = HTTP_MAX_TOTAL;          /* auth_http's buffer */
    }
    http_parse_init(&whole);
    a = http_parse_final(&whole, data, &head_a, size);

    /* the same bytes in pieces of 1..16 bytes, sizes from the input */
    http_parse_init(&piece);
    while (len < size && b == HTTP_PARSE_AGAIN) {
        step = size ? (size_t)(data[k++ % size] % 16) + 1 : 1;
        len = len + step > size ? size : len + step;
        b = http_parse_final(&piece, data, &head_b, len);
    }
    if (a != b) {
        abort();
    }
    if (a == HTTP_PARSE_OK) {
        if ((whole.status < 200 && whole.status != 101)
            || head_a != head_b
            || head_a + whole.header_end > size
            || whole.header_end != piece.header_end
            || whole.nheaders != piece.nheaders
            || whole.nheaders > HTTP_MAX_HEADERS) {
            abort();
        }
        for (i = 0; i < whole.nheaders; i++) {
            const struct http_header *h = &whole.headers[i];

            if (h->name.len == 0
                || h->name.off + h->name.len > whole.header_end
                || h->value.off + h->value.len > whole.header_end) {
                abort();
            }
        }
    }
    if (a != HTTP_PARSE_AGAIN) {
        check_result(&whole, data + head_a, AUTH_METHOD_PLAIN, PROTO_IMAP);
        check_result(&whole, data + head_a, AUTH_METHOD_APOP, PROTO_POP3);
        check_result(&whole, data + head_a, AUTH_METHOD_NONE, PROTO_SMTP);
    }
    return 0;
}
