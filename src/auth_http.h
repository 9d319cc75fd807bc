/*
 * auth_http.h - the pure parts of the NGINX auth protocol client, exposed
 * for unit and fuzz tests: building the request text and turning a parsed
 * response into a struct auth_result.  auth_http_query() (auth.h) does the
 * I/O around them.
 */
#ifndef POSTERN_AUTH_HTTP_H
#define POSTERN_AUTH_HTTP_H

#include <stddef.h>

#include "auth.h"

/*
 * Build the HTTP/1.0 request for rq: a malloc'd, NUL-terminated text in
 * *req_r (its length in *len_r).  It holds the password: the caller wipes
 * it (mem_wipe) before free().  0 ok; -1 with a reason in err when out of
 * memory or when a value that cannot be escaped (the salt) holds CR, LF or
 * NUL.
 */
int auth_http_build_request(const struct server_conf *sc,
                            const struct auth_request *rq,
                            char **req_r, size_t *len_r,
                            char *err, size_t errlen);

enum auth_http_verdict {
    AUTH_HTTP_DONE,         /* *r is the answer */
    AUTH_HTTP_RETRY         /* "Auth-Status: WAIT": ask again after r->wait s */
};

/*
 * Interpret a complete response head buf[0 .. len) (http_parse() must have
 * returned OK or INVALID for it; pass the parser state).  peer names the
 * auth server in log reasons ("127.0.0.1:9000").  Fills *r, which the
 * caller has zeroed; AUTH_TEMPFAIL with r->log_reason on any malformation.
 */
struct http_response;
enum auth_http_verdict auth_http_interpret(const struct http_response *hr,
                                           const unsigned char *buf,
                                           const struct auth_request *rq,
                                           const char *peer,
                                           struct auth_result *r);

/*
 * Whether the connection a complete final response head buf came on may
 * carry the next request: the response says "Connection: keep-alive" (the
 * request asks for it in HTTP/1.0) and no Connection header says "close",
 * it has no Transfer-Encoding, and its body has a known end that fits the
 * response buffer: none (204, 304) or one Content-Length value.  Never
 * for a 1xx head, whose final response is still to come.  1 with the
 * response's whole length (head and body) in *total_r; 0 if not.
 */
int auth_http_reusable(const struct http_response *hr,
                       const unsigned char *buf, size_t *total_r);

/* "host:port", "[v6]:port" or "unix:/path" for log reasons. */
void auth_http_peer_name(const struct auth_http_url *u, char *out,
                         size_t outlen);

#endif
