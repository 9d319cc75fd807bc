/*
 * test_resolver_name.c - the RFC 1034 host name check applied to PTR
 * answers and Auth-Server names, and the `resolver` server syntax.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "resolver.h"
#include "tap.h"

static void
good(const char *name)
{
    ok(resolver_name_valid(name, strlen(name)) == 1, "valid: \"%s\"", name);
}

/* len given, so that names with NUL can be tested */
static void
bad(const char *name, size_t len, const char *what)
{
    ok(resolver_name_valid(name, len) == 0, "invalid: %s", what);
}

#define BAD(s, what) bad((s), sizeof(s) - 1, (what))

static void
test_names(void)
{
    char b[400];
    size_t i;

    good("mail.example.com");
    good("MAIL.Example.COM");
    good("localhost");
    good("a");
    good("a.b");
    good("3com.example");               /* RFC 1123: digits first */
    good("x-1.example-host.net");
    good("1.2.3.4.in-addr.example");
    good("mail.example.com.");          /* one trailing dot */
    good("xn--bcher-kva.example");

    BAD("", "empty");
    BAD(".", "only a dot");
    BAD(".example.com", "leading dot");
    BAD("mail..example.com", "empty label");
    BAD("mail.example.com..", "two trailing dots");
    BAD("-mail.example.com", "label starts with a hyphen");
    BAD("mail-.example.com", "label ends with a hyphen");
    BAD("mail.example-", "last label ends with a hyphen");
    BAD("mail.example-.", "last label ends with a hyphen, dot");
    BAD("mail_1.example.com", "underscore");
    BAD("mail example.com", "space");
    BAD("mail.example.com\r\nX-Injected: 1", "CR LF");
    BAD("mail.example.com\n", "LF");
    BAD("mail.exa\0mple.com", "NUL inside");
    BAD("mail\\.example.com", "backslash escape");
    BAD("mail\\013.example.com", "decimal escape");
    BAD("mail/x.example.com", "slash");
    BAD("*.example.com", "wildcard");
    BAD("m\xc3\xa4il.example.com", "8-bit bytes");
    BAD("\"mail\".example.com", "quotes");
    BAD("mail.example.com;rm", "semicolon");
    BAD("[127.0.0.1]", "address literal in brackets");

    /* label length: 63 is the most */
    memset(b, 'a', 63);
    memcpy(b + 63, ".example", 9);
    ok(resolver_name_valid(b, strlen(b)) == 1, "valid: 63-byte label");
    memset(b, 'a', 64);
    memcpy(b + 64, ".example", 9);
    ok(resolver_name_valid(b, strlen(b)) == 0, "invalid: 64-byte label");

    /* total length: 253 is the most, 254 with a trailing dot */
    for (i = 0; i < 253; i++) {
        b[i] = (i % 50 == 49) ? '.' : 'a';
    }
    b[253] = '\0';
    ok(resolver_name_valid(b, 253) == 1, "valid: 253 characters");
    b[253] = '.';
    b[254] = '\0';
    ok(resolver_name_valid(b, 254) == 1, "valid: 253 characters and a dot");
    b[253] = 'a';
    ok(resolver_name_valid(b, 254) == 0, "invalid: 254 characters");
    b[254] = '.';
    ok(resolver_name_valid(b, 255) == 0, "invalid: 254 characters and a dot");

    /* the length argument is respected: bytes past it do not count */
    ok(resolver_name_valid("mail.example.com\r\n", 16) == 1,
       "only len bytes are judged");
}

static void
server(const char *s, int want_ok, int family, const char *addr,
       unsigned port)
{
    struct sockaddr_storage ss;
    char err[200], text[INET6_ADDRSTRLEN] = "";
    unsigned got_port = 0;
    int rc;

    rc = resolver_parse_server(s, &ss, err, sizeof(err));
    if (!want_ok) {
        ok(rc == -1 && err[0] != '\0', "server \"%s\" refused", s);
        return;
    }
    if (rc == 0 && ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
        got_port = ntohs(sin->sin_port);
    } else if (rc == 0 && ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
        got_port = ntohs(sin6->sin6_port);
    }
    ok(rc == 0 && ss.ss_family == family && strcmp(text, addr) == 0
       && got_port == port, "server \"%s\" -> %s port %u", s, text,
       got_port);
}

static void
test_servers(void)
{
    server("127.0.0.1", 1, AF_INET, "127.0.0.1", 53);
    server("127.0.0.1:5353", 1, AF_INET, "127.0.0.1", 5353);
    server("[::1]", 1, AF_INET6, "::1", 53);
    server("[::1]:5300", 1, AF_INET6, "::1", 5300);
    server("2001:db8::53", 1, AF_INET6, "2001:db8::53", 53);
    server("127.0.0.1:0", 0, 0, NULL, 0);
    server("127.0.0.1:65536", 0, 0, NULL, 0);
    server("127.0.0.1:", 0, 0, NULL, 0);
    server("127.0.0.1:53x", 0, 0, NULL, 0);
    server("[::1", 0, 0, NULL, 0);
    server("[::1]x", 0, 0, NULL, 0);
    server("[127.0.0.1]:53", 0, 0, NULL, 0);
    server("ns.example.com", 0, 0, NULL, 0);
    server("", 0, 0, NULL, 0);
}

int
main(void)
{
    test_names();
    test_servers();
    return tap_done();
}
