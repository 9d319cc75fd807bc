/*
 * test_conf_value.c - the value syntaxes of postern.conf: times, sizes,
 * listen, address rules and their matching, auth_http URLs, resolver,
 * ssl_session_cache tokens, and the -T formatting of times.
 */

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "conf_int.h"
#include "tap.h"

/* ---- time ---------------------------------------------------------- */

/* Tests of time. */
static void
test_time(void)
{
    static const struct {
        const char *s;
        int sec;
        msec_t want;
    } good[] = {
        { "0", 0, 0 },
        /* a number without a unit is seconds, as NGINX reads it */
        { "60", 0, 60000 },
        { "1h30", 0, 3600000 + 30000 },
        { "1h 30", 0, 3600000 + 30000 },
        { "9223372036854775", 0, 9223372036854775000LL },
        { "60s", 0, 60000 },
        { "1h30m", 0, 5400000 },
        { "1h 30m", 0, 5400000 },
        { " 2m ", 0, 120000 },
        { "500ms", 0, 500 },
        { "1s500ms", 0, 1500 },
        { "1y", 0, 365LL * 86400000 },
        { "1M", 0, 30LL * 86400000 },
        { "1w", 0, 7LL * 86400000 },
        { "1d12h", 0, 36LL * 3600000 },
        { "1y1M1w1d1h1m1s1ms", 0,
          (365LL + 30 + 7 + 1) * 86400000 + 3600000 + 60000 + 1000 + 1 },
        { "300", 1, 300000 },
        { "5m", 1, 300000 },
        { "0", 1, 0 },
    };
    static const struct {
        const char *s;
        int sec;
    } bad[] = {
        { "", 0 }, { " ", 0 }, { "s", 0 }, { "1x", 0 }, { "1h1h", 0 },
        { "30m1h", 0 }, { "1s1m", 0 }, { "30 1h", 0 }, { "1h30 5", 0 },
        { "-1", 0 }, { "9223372036854775807", 0 }, { "1h9223372036854775", 0 },
        { "1.5s", 0 }, { "1 h", 0 }, { "1hs", 0 }, { "1ms", 1 },
        { "1s500ms", 1 }, { "9223372036854775808", 0 },
        { "99999999999999999999", 0 }, { "200000000000d", 0 },
        { "9223372036854775807", 1 }, { "9223372036854776s", 0 },
        { "1h30m+1s", 0 }, { "h1", 0 }, { "1S", 0 }, { "1H", 0 },
    };
    msec_t ms;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ms = -7;
        is_int(conf_parse_time(good[i].s, good[i].sec, &ms), 0,
               "time \"%s\"%s is valid", good[i].s, good[i].sec ? " (s)" : "");
        is_int(ms, good[i].want, "time \"%s\" value", good[i].s);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ms = -7;
        is_int(conf_parse_time(bad[i].s, bad[i].sec, &ms), -1,
               "time \"%s\"%s is invalid", bad[i].s, bad[i].sec ? " (s)" : "");
        is_int(ms, -7, "time \"%s\": result untouched", bad[i].s);
    }
    is_int(conf_parse_time(NULL, 0, &ms), -1, "time NULL is invalid");
}

/* ---- size ---------------------------------------------------------- */

/* Tests of size. */
static void
test_size(void)
{
    static const struct {
        const char *s;
        size_t want;
    } good[] = {
        { "0", 0 }, { "1024", 1024 }, { "16k", 16384 }, { "16K", 16384 },
        { "1m", 1048576 }, { "1M", 1048576 },
    };
    static const char *const bad[] = {
        "", "k", "m", "1g", "1.5k", "-1", " 1", "1 ", "1 k", "1kb", "0x10",
        "18446744073709551615k", "99999999999999999999",
    };
    size_t v;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = 7;
        is_int(conf_parse_size(good[i].s, &v), 0, "size \"%s\" is valid",
               good[i].s);
        is_int(v, good[i].want, "size \"%s\" value", good[i].s);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 7;
        is_int(conf_parse_size(bad[i], &v), -1, "size \"%s\" is invalid",
               bad[i]);
        is_int(v, 7, "size \"%s\": result untouched", bad[i]);
    }
}

/* ---- listen -------------------------------------------------------- */

/* Tests of listen. */
static void
test_listen(void)
{
    struct listen_conf l;
    char err[256];
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&l.addr;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&l.addr;
    const struct sockaddr_un *un = (const struct sockaddr_un *)&l.addr;

    is_int(conf_parse_listen("143", &l, err, sizeof(err)), 0, "listen 143");
    is_int(l.addr.ss_family, AF_INET, "port only: IPv4");
    is_int(ntohl(sin->sin_addr.s_addr), INADDR_ANY, "port only: any address");
    is_int(ntohs(sin->sin_port), 143, "port only: sin_port");
    is_int(l.port, 143, "port only: port");
    is_str(l.host, "*", "port only: host *");
    is_str(l.text, "143", "text kept");
    ok(!l.ssl && !l.proxy_protocol && !l.bind, "no options set");
    ok(l.backlog == -1 && l.rcvbuf == -1 && l.sndbuf == -1
       && l.ipv6only == -1 && l.so_keepalive == -1, "options unset: -1");
    listen_conf_free(&l);

    is_int(conf_parse_listen("127.0.0.1:1143 ssl proxy_protocol backlog=10 "
                             "rcvbuf=8k sndbuf=1m so_keepalive=on", &l,
                             err, sizeof(err)), 0, "listen with options");
    is_int(l.addr.ss_family, AF_INET, "IPv4 address");
    is_int(ntohl(sin->sin_addr.s_addr), 0x7f000001, "127.0.0.1");
    is_int(l.port, 1143, "port 1143");
    is_str(l.host, "127.0.0.1", "host as written");
    ok(l.ssl && l.proxy_protocol, "ssl proxy_protocol");
    is_int(l.backlog, 10, "backlog");
    is_int(l.rcvbuf, 8192, "rcvbuf");
    is_int(l.sndbuf, 1048576, "sndbuf");
    is_int(l.so_keepalive, 1, "so_keepalive=on");
    ok(l.bind, "backlog implies bind");
    listen_conf_free(&l);

    is_int(conf_parse_listen("[::1]:993 ssl ipv6only=off bind", &l, err,
                             sizeof(err)), 0, "IPv6 listen");
    is_int(l.addr.ss_family, AF_INET6, "AF_INET6");
    ok(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr), "::1");
    is_int(ntohs(sin6->sin6_port), 993, "sin6_port");
    is_int(l.ipv6only, 0, "ipv6only=off");
    ok(l.bind, "bind");
    listen_conf_free(&l);

    is_int(conf_parse_listen("[::]:110 ipv6only=on", &l, err, sizeof(err)),
           0, "[::] ipv6only=on");
    is_int(l.ipv6only, 1, "ipv6only=on");
    listen_conf_free(&l);

    is_int(conf_parse_listen("*:25", &l, err, sizeof(err)), 0, "*:25");
    is_int(l.addr.ss_family, AF_INET, "*: IPv4");
    is_int(ntohl(sin->sin_addr.s_addr), INADDR_ANY, "*: any");
    is_str(l.host, "*", "*: host");
    listen_conf_free(&l);

    is_int(conf_parse_listen("localhost:2525", &l, err, sizeof(err)), 0,
           "host name resolved");
    ok(l.addr.ss_family == AF_INET || l.addr.ss_family == AF_INET6,
       "localhost resolved to an address");
    is_int(l.port, 2525, "resolved port");
    is_str(l.host, "localhost", "host name kept");
    listen_conf_free(&l);

    is_int(conf_parse_listen("unix:/run/postern/imap.sock ssl", &l, err,
                             sizeof(err)), 0, "unix: listen");
    is_int(l.addr.ss_family, AF_UNIX, "AF_UNIX");
    is_str(un->sun_path, "/run/postern/imap.sock", "sun_path");
    is_int(l.port, 0, "no port");
    ok(l.ssl, "unix with ssl");
    listen_conf_free(&l);

    is_int(conf_parse_listen("143 so_keepalive=30m::10", &l, err,
                             sizeof(err)), 0, "so_keepalive=30m::10");
    is_int(l.so_keepalive, 1, "keepalive on");
    is_int(l.keepidle, 1800, "keepidle 30m");
    is_int(l.keepintvl, 0, "keepintvl default");
    is_int(l.keepcnt, 10, "keepcnt 10");
    listen_conf_free(&l);

    is_int(conf_parse_listen("143 so_keepalive=:10s:", &l, err, sizeof(err)),
           0, "so_keepalive=:10s:");
    is_int(l.keepintvl, 10, "keepintvl 10");
    listen_conf_free(&l);

    is_int(conf_parse_listen("143 so_keepalive=off", &l, err, sizeof(err)),
           0, "so_keepalive=off");
    is_int(l.so_keepalive, 0, "keepalive off");
    ok(l.bind, "so_keepalive implies bind, as in NGINX");
    listen_conf_free(&l);

    is_int(conf_parse_listen("[::]:143", &l, err, sizeof(err)), 0,
           "[::]:143");
    is_int(l.ipv6only, -1, "ipv6only unset (the socket gets on)");
    ok(!l.bind, "[::]:143: no bind");
    listen_conf_free(&l);

    {
        static const struct {
            const char *s, *err;
        } bad[] = {
            { "", "empty value" },
            { "   ", "empty value" },
            { "0", "no port in \"0\"" },
            { "65536", "no port in \"65536\"" },
            { "abc", "no port in \"abc\"" },
            { "127.0.0.1", "no port in \"127.0.0.1\"" },
            { "127.0.0.1:", "invalid port in \"127.0.0.1:\"" },
            { "1.2.3.4:99999", "invalid port in \"1.2.3.4:99999\"" },
            { ":143", "invalid host in \":143\"" },
            { "[::1]", "no port in \"[::1]\"" },
            { "[::1:993", "missing \"]\" in \"[::1:993\"" },
            { "::1:993", "an IPv6 address must be in brackets in "
                         "\"::1:993\"" },
            { "[zz::1]:143", "invalid IPv6 address in \"[zz::1]:143\"" },
            { "143 foo", "invalid parameter \"foo\"" },
            { "143 ssl=on", "invalid parameter \"ssl=on\"" },
            { "143 backlog=0", "invalid backlog \"0\"" },
            { "143 backlog=x", "invalid backlog \"x\"" },
            { "143 rcvbuf=", "invalid rcvbuf \"\"" },
            { "143 sndbuf=0", "invalid sndbuf \"0\"" },
            { "143 ipv6only=on", "ipv6only needs an IPv6 address" },
            { "[::]:143 ipv6only=maybe", "invalid ipv6only \"maybe\"" },
            { "143 so_keepalive=::", "invalid so_keepalive \"::\"" },
            { "143 so_keepalive=1:2", "invalid so_keepalive \"1:2\"" },
            { "143 so_keepalive=1ms::", "invalid so_keepalive \"1ms::\"" },
            { "143 so_keepalive=::0", "invalid so_keepalive \"::0\"" },
            { "unix:rel.sock", "UNIX socket path must be absolute in "
                               "\"unix:rel.sock\"" },
            { "unix:/x.sock so_keepalive=on", "so_keepalive on a UNIX "
                                              "socket" },
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            err[0] = '\0';
            is_int(conf_parse_listen(bad[i].s, &l, err, sizeof(err)), -1,
                   "listen \"%s\" is invalid", bad[i].s);
            is_str(err, bad[i].err, "listen \"%s\" message", bad[i].s);
            ok(l.text == NULL && l.host == NULL, "listen \"%s\": freed",
               bad[i].s);
        }
    }
    is_int(conf_parse_listen("host.invalid:143", &l, err, sizeof(err)), -1,
           "an unknown host name is an error");
    ok(strncmp(err, "host \"host.invalid\" not found", 29) == 0,
       "unknown host message: %s", err);
}

/* Tests of the listen address comparisons. */
static void
test_listen_addr(void)
{
    static const char *const v[] = {
        "143", "*:143", "127.0.0.1:143", "127.0.0.1:144", "[::]:143",
        "[::1]:143", "[::1]:143 ssl", "unix:/a.sock", "unix:/b.sock",
        "127.0.0.1:143 bind",
    };
    struct listen_conf l[sizeof(v) / sizeof(v[0])];
    struct sockaddr_in sin;
    char err[256];

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        if (conf_parse_listen(v[i], &l[i], err, sizeof(err)) != 0) {
            printf("Bail out! listen \"%s\": %s\n", v[i], err);
            exit(1);
        }
    }
    ok(listen_is_wildcard(&l[0]) && listen_is_wildcard(&l[1])
       && listen_is_wildcard(&l[4]), "143, *:143, [::]:143 are wildcards");
    ok(!listen_is_wildcard(&l[2]) && !listen_is_wildcard(&l[5])
       && !listen_is_wildcard(&l[7]), "addresses and paths are not");
    ok(listen_same_addr(&l[0], &l[1]), "143 is *:143");
    ok(listen_same_addr(&l[5], &l[6]), "options do not count");
    ok(listen_same_addr(&l[2], &l[9]), "nor does bind");
    ok(!listen_same_addr(&l[2], &l[3]), "another port");
    ok(!listen_same_addr(&l[0], &l[4]), "another family");
    ok(!listen_same_addr(&l[0], &l[2]), "wildcard and address differ");
    ok(listen_same_addr(&l[7], &l[7]) && !listen_same_addr(&l[7], &l[8]),
       "UNIX paths compared");
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(143);
    sin.sin_addr.s_addr = htonl(0x7f000001);
    ok(listen_is_addr(&l[2], (struct sockaddr *)&sin),
       "a local address 127.0.0.1:143 is 127.0.0.1:143");
    ok(!listen_is_addr(&l[0], (struct sockaddr *)&sin),
       "it is not the wildcard's own address");
    sin.sin_port = htons(144);
    ok(!listen_is_addr(&l[2], (struct sockaddr *)&sin), "nor of port 144");
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        listen_conf_free(&l[i]);
    }
}

/* ---- address rules ------------------------------------------------- */

/* A sockaddr for an address text, or AF_UNIX for "unix". */
static struct sockaddr_storage
sa_of(const char *ip)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strcmp(ip, "unix") == 0) {
        ss.ss_family = AF_UNIX;
    } else if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &s6->sin6_addr);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

        s4->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &s4->sin_addr);
    }
    return ss;
}

/* Match ip against rules (texts with verbs): 1 allow, 0 deny, -1 none. */
static int
match(const char *const *texts, size_t n, const char *ip)
{
    struct addr_rule v[8];
    struct addr_rules rules = { n, v };
    struct sockaddr_storage ss = sa_of(ip);
    int allow = -5;

    for (size_t i = 0; i < n; i++) {
        if (conf_parse_addr_rule(texts[i], 1, &v[i]) != 0) {
            return -2;
        }
    }
    if (!addr_rules_match(&rules, (struct sockaddr *)&ss, &allow)) {
        return -1;
    }
    return allow;
}

/* Tests of addr rules. */
static void
test_addr_rules(void)
{
    struct addr_rule r;
    char buf[80];
    static const char *const bad[] = {
        "", "x", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1",
        "1.2.3.4/8x", "1.2.3", "unix", "unix:/x", "all ", "10.0.0.1 ",
    };
    static const char *const bad_verb[] = {
        "allow", "allow ", "permit 1.2.3.4", "1.2.3.4", "deny  x",
        "allowall",
    };
    static const char *const acl[] = {
        "deny 192.168.1.1", "allow 192.168.0.0/16", "allow 2001:db8::/32",
        "allow unix:", "deny all",
    };
    static const char *const acl2[] = { "allow 10.0.0.0/9" };

    is_int(conf_parse_addr_rule("10.1.2.3/8", 0, &r), 0, "CIDR");
    is_int(r.family, AF_INET, "CIDR family");
    is_int(r.prefix, 8, "CIDR prefix");
    conf_addr_rule_text(&r, 0, buf, sizeof(buf));
    is_str(buf, "10.0.0.0/8", "host bits cleared");
    is_int(conf_parse_addr_rule("::1", 0, &r), 0, "IPv6 address");
    is_int(r.prefix, 128, "IPv6 address: /128");
    conf_addr_rule_text(&r, 0, buf, sizeof(buf));
    is_str(buf, "::1", "IPv6 text");
    is_int(conf_parse_addr_rule("2001:db8::/32", 0, &r), 0, "IPv6 CIDR");
    is_int(conf_parse_addr_rule("all", 0, &r), 0, "all");
    ok(r.all, "all flag");
    is_int(conf_parse_addr_rule("unix:", 0, &r), 0, "unix:");
    ok(r.is_unix, "unix flag");
    is_int(conf_parse_addr_rule("deny 192.168.0.0/16", 1, &r), 0, "deny");
    is_int(r.allow, 0, "deny: allow = 0");
    conf_addr_rule_text(&r, 1, buf, sizeof(buf));
    is_str(buf, "deny 192.168.0.0/16", "rule text with verb");
    is_int(conf_parse_addr_rule("allow   all", 1, &r), 0, "allow all");
    ok(r.allow && r.all, "allow all flags");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_int(conf_parse_addr_rule(bad[i], 0, &r), -1,
               "address \"%s\" is invalid", bad[i]);
    }
    for (size_t i = 0; i < sizeof(bad_verb) / sizeof(bad_verb[0]); i++) {
        is_int(conf_parse_addr_rule(bad_verb[i], 1, &r), -1,
               "rule \"%s\" is invalid", bad_verb[i]);
    }

    is_int(match(acl, 5, "192.168.1.1"), 0, "first match wins: deny");
    is_int(match(acl, 5, "192.168.2.2"), 1, "CIDR allows");
    is_int(match(acl, 5, "10.0.0.1"), 0, "deny all");
    is_int(match(acl, 5, "::ffff:192.168.2.2"), 1,
           "IPv4-mapped peer matches an IPv4 rule");
    is_int(match(acl, 5, "::ffff:192.168.1.1"), 0,
           "IPv4-mapped peer: deny rule");
    is_int(match(acl, 5, "2001:db8:1::1"), 1, "IPv6 CIDR allows");
    is_int(match(acl, 5, "2001:db9::1"), 0, "outside IPv6 CIDR: deny all");
    is_int(match(acl, 5, "unix"), 1, "unix: rule");
    is_int(match(acl + 4, 1, "unix"), 0, "all matches UNIX peers");
    is_int(match(acl2, 1, "10.127.0.1"), 1, "/9 inside");
    is_int(match(acl2, 1, "10.128.0.1"), -1, "/9 outside: no match");
    is_int(match(acl2, 1, "unix"), -1, "an IP rule does not match unix");
    is_int(match(acl2, 0, "10.0.0.1"), -1, "no rules: no match");
    {
        static const char *const v6[] = { "allow ::ffff:10.0.0.0/104" };

        is_int(match(v6, 1, "::ffff:10.1.1.1"), 1,
               "mapped peer matches a mapped IPv6 rule");
    }
    {
        static const char *const zero[] = { "allow 0.0.0.0/0" };

        is_int(match(zero, 1, "203.0.113.9"), 1, "/0 matches every IPv4");
        is_int(match(zero, 1, "2001:db8::1"), -1, "/0 IPv4: not IPv6");
    }
}

/* ---- auth_http, resolver, session cache --------------------------- */

/* Tests of auth http. */
static void
test_auth_http(void)
{
    static const struct {
        const char *s, *host, *uri;
        int is_unix, port;
    } good[] = {
        { "http://127.0.0.1:9000/auth", "127.0.0.1", "/auth", 0, 9000 },
        { "HTTP://auth.example.com/a/b?x=1", "auth.example.com", "/a/b?x=1",
          0, 80 },
        { "127.0.0.1", "127.0.0.1", "/", 0, 80 },
        { "auth.example.com:8080", "auth.example.com", "/", 0, 8080 },
        { "http://[::1]:9000/a", "::1", "/a", 0, 9000 },
        { "[::1]/x", "::1", "/x", 0, 80 },
        { "unix:/run/auth.sock", "/run/auth.sock", "/", 1, 0 },
        { "unix:/run/auth.sock:/auth", "/run/auth.sock", "/auth", 1, 0 },
        { "http://unix:/run/a.sock:/x", "/run/a.sock", "/x", 1, 0 },
    };
    static const struct {
        const char *s, *err;
    } bad[] = {
        { "", "invalid URL \"\"" },
        { "http://a b/", "invalid URL \"http://a b/\"" },
        { "https://a/", "https is not supported in \"https://a/\"" },
        { "ftp://a/", "only http:// is supported in \"ftp://a/\"" },
        { "http://", "invalid host in \"http://\"" },
        { "http://:80/", "invalid host in \"http://:80/\"" },
        { "http://h:0/", "invalid port in \"http://h:0/\"" },
        { "http://h:99999", "invalid port in \"http://h:99999\"" },
        { "http://h:x/", "invalid port in \"http://h:x/\"" },
        { "http://[::1/", "missing \"]\" in \"http://[::1/\"" },
        { "http://[::1]x/", "invalid host in \"http://[::1]x/\"" },
        { "http://[zz]/", "invalid IPv6 address in \"http://[zz]/\"" },
        { "http://u@h/", "invalid host in \"http://u@h/\"" },
        { "unix:rel", "UNIX socket path must be absolute in \"unix:rel\"" },
    };
    struct auth_http_url u;
    char err[256];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        is_int(conf_parse_auth_http(good[i].s, &u, err, sizeof(err)), 0,
               "auth_http \"%s\"", good[i].s);
        is_str(u.host, good[i].host, "auth_http \"%s\" host", good[i].s);
        is_str(u.uri, good[i].uri, "auth_http \"%s\" uri", good[i].s);
        is_int(u.is_unix, good[i].is_unix, "auth_http \"%s\" unix", good[i].s);
        if (!good[i].is_unix) {
            is_int(u.port, good[i].port, "auth_http \"%s\" port", good[i].s);
        }
        is_str(u.text, good[i].s, "auth_http text");
        auth_http_url_free(&u);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        is_int(conf_parse_auth_http(bad[i].s, &u, err, sizeof(err)), -1,
               "auth_http \"%s\" is invalid", bad[i].s);
        is_str(err, bad[i].err, "auth_http \"%s\" message", bad[i].s);
    }

    /* the host's addresses, with the port, as loading finds them */
    is_int(conf_parse_auth_http("http://127.0.0.1:9000/a", &u, err,
                                sizeof(err)), 0, "v4 url");
    is_int(conf_resolve_auth_http(&u, err, sizeof(err)), 0, "v4 resolves");
    ok(u.naddrs == 1 && u.addrs[0].ss_family == AF_INET
       && ((struct sockaddr_in *)&u.addrs[0])->sin_port == htons(9000),
       "v4: one address, port 9000");
    auth_http_url_free(&u);
    is_int(conf_parse_auth_http("[::1]:8080", &u, err, sizeof(err)), 0,
           "v6 url");
    is_int(conf_resolve_auth_http(&u, err, sizeof(err)), 0, "v6 resolves");
    ok(u.naddrs == 1 && u.addrs[0].ss_family == AF_INET6
       && ((struct sockaddr_in6 *)&u.addrs[0])->sin6_port == htons(8080),
       "v6: one address, port 8080");
    auth_http_url_free(&u);
    is_int(conf_parse_auth_http("unix:/run/a.sock", &u, err, sizeof(err)), 0,
           "unix url");
    is_int(conf_resolve_auth_http(&u, err, sizeof(err)), 0,
           "unix: nothing to look up");
    ok(u.naddrs == 0 && u.addrs == NULL, "unix: no addresses");
    auth_http_url_free(&u);
    is_int(conf_parse_auth_http("no-such-host.invalid", &u, err,
                                sizeof(err)), 0, "unresolvable name parses");
    is_int(conf_resolve_auth_http(&u, err, sizeof(err)), -1,
           "unresolvable name: -1");
    ok(strncmp(err, "host \"no-such-host.invalid\" not found: ", 39) == 0,
       "unresolvable name: message \"%s\"", err);
    auth_http_url_free(&u);
}

/* Tests of resolver. */
static void
test_resolver(void)
{
    static const struct {
        const char *s, *err;
    } bad[] = {
        { "", "no resolver address" },
        { "valid=30s", "no resolver address" },
        { "1.2.3.4 valid=x", "invalid valid \"x\"" },
        { "1.2.3.4 valid=1ms", "invalid valid \"1ms\"" },
        { "1.2.3.4 ipv4=off ipv6=off", "ipv4=off and ipv6=off leave nothing "
                                       "to ask" },
        { "1.2.3.4 ipv4=maybe", "invalid ipv4 \"maybe\"" },
        { "::1", "invalid address \"::1\"" },
        { "1.2.3.4:0", "invalid address \"1.2.3.4:0\"" },
        { "[::1]:x", "invalid address \"[::1]:x\"" },
        { "bad_host!", "invalid address \"bad_host!\"" },
    };
    struct resolver_conf r;
    char err[256];

    is_int(conf_parse_resolver("off", &r, err, sizeof(err)), 0, "off");
    is_int(r.enabled, 0, "off: disabled");
    resolver_conf_free(&r);
    is_int(conf_parse_resolver("127.0.0.1:5353 [::1] localhost:54 "
                               "valid=30s ipv6=off", &r, err, sizeof(err)),
           0, "resolver with options");
    is_int(r.enabled, 1, "enabled");
    ok(r.servers.n >= 3, "three servers or more (a name's every address)");
    is_str(r.servers.v[0], "127.0.0.1:5353", "server 1 as written");
    is_str(r.servers.v[1], "[::1]", "server 2 as written");
    ok(r.servers.n >= 3 && (strcmp(r.servers.v[2], "127.0.0.1:54") == 0
                            || strcmp(r.servers.v[2], "[::1]:54") == 0),
       "a name is resolved at load: %s", r.servers.n >= 3 ? r.servers.v[2] : "");
    is_int(r.valid_sec, 30, "valid=30s");
    ok(r.ipv4 && !r.ipv6, "ipv4 on, ipv6 off");
    resolver_conf_free(&r);
    is_int(conf_parse_resolver("no-such-host.invalid", &r, err, sizeof(err)),
           -1, "a name that does not resolve");
    ok(strncmp(err, "host \"no-such-host.invalid\" not found", 34) == 0,
       "its message: %s", err);
    is_int(conf_parse_resolver("1.0.0.1 1.0.0.2 1.0.0.3 1.0.0.4 1.0.0.5 1.0.0.6 "
                               "1.0.0.7 1.0.0.8 1.0.0.9 1.0.0.10 1.0.0.11 "
                               "1.0.0.12 1.0.0.13 1.0.0.14 1.0.0.15 1.0.0.16 "
                               "1.0.0.17", &r, err, sizeof(err)),
           -1, "17 addresses");
    is_str(err, "more than 16 resolver addresses", "its message");
    resolver_conf_free(&r);
    is_int(conf_parse_resolver("10.0.0.53", &r, err, sizeof(err)), 0,
           "one server");
    is_int(r.valid_sec, -1, "valid unset: -1");
    ok(r.ipv4 && r.ipv6, "both families by default");
    resolver_conf_free(&r);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        is_int(conf_parse_resolver(bad[i].s, &r, err, sizeof(err)), -1,
               "resolver \"%s\" is invalid", bad[i].s);
        is_str(err, bad[i].err, "resolver \"%s\" message", bad[i].s);
    }
}

/* Tests of session cache. */
static void
test_session_cache(void)
{
    static const char *const good[] = {
        "off", "none", "builtin", "builtin:1000", "shared:MAIL:10m",
        "shared:x:8192",
    };
    static const char *const bad[] = {
        "", "builtin:0", "builtin:x", "builtin:", "shared:MAIL", "shared::1m",
        "shared:M:0", "shared:M:1x", "foo", "Builtin",
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ok(conf_check_session_cache_token(good[i]), "cache token \"%s\"",
           good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok(!conf_check_session_cache_token(bad[i]),
           "cache token \"%s\" is invalid", bad[i]);
    }
}

/* ---- protocols, -T formatting -------------------------------------- */

/* Tests of misc. */
static void
test_misc(void)
{
    static const struct {
        unsigned short port;
        int proto;
    } ports[] = {
        { 143, PROTO_IMAP }, { 993, PROTO_IMAP }, { 110, PROTO_POP3 },
        { 995, PROTO_POP3 }, { 25, PROTO_SMTP }, { 465, PROTO_SMTP },
        { 587, PROTO_SMTP }, { 1143, -1 }, { 0, -1 }, { 80, -1 },
    };
    static const struct {
        msec_t ms;
        const char *text;
    } times[] = {
        { 0, "\"0s\"" }, { 1, "\"1ms\"" }, { 1500, "\"1s500ms\"" },
        { 60000, "\"1m\"" }, { 5400000, "\"1h30m\"" },
        { 86400000, "\"1d\"" }, { 365LL * 86400000 + 1, "\"1y1ms\"" },
    };

    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
        is_int(conf_proto_from_port(ports[i].port), ports[i].proto,
               "port %u", ports[i].port);
    }
    is_str(proto_name(PROTO_IMAP), "imap", "proto_name imap");
    is_str(proto_name(PROTO_POP3), "pop3", "proto_name pop3");
    is_str(proto_name(PROTO_SMTP), "smtp", "proto_name smtp");
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        msec_t back = -1;

        conf_dump_time(f, times[i].ms);
        fclose(f);
        is_str(buf, times[i].text, "time %lld dumped", (long long)times[i].ms);
        buf[strlen(buf) - 1] = '\0';
        is_int(conf_parse_time(buf + 1, 0, &back), 0, "dumped time parses");
        is_int(back, times[i].ms, "dumped time round trip");
        free(buf);
    }
    {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        conf_dump_string(f, "a\"b\\c\n\x01");
        fclose(f);
        is_str(buf, "\"a\\\"b\\\\c\\n\\x01\"", "string escaped for -T");
        free(buf);
    }
}

/* Run every group of tests and print the TAP plan. */
int
main(void)
{
    test_time();
    test_size();
    test_listen();
    test_listen_addr();
    test_addr_rules();
    test_auth_http();
    test_resolver();
    test_session_cache();
    test_misc();
    return tap_done();
}
