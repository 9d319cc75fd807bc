/*
 * test_proxy_protocol.c - PROXY protocol v1/v2 parser (whole and byte by
 * byte), the v1 writer, and proxy_protocol_read() over a socketpair.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "conn.h"
#include "proxy_protocol.h"
#include "tap.h"

static const unsigned char sig[12] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

/* "1.2.3.4:5" / "[::1]:5" of a parsed address, for comparisons. */
static const char *
addr_str(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    char a[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

        inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
        snprintf(out, outlen, "%s:%u", a, ntohs(s->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

        inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
        snprintf(out, outlen, "[%s]:%u", a, ntohs(s->sin6_port));
    } else {
        snprintf(out, outlen, "-");
    }
    return out;
}

/* A printable rendering of test input for test names (one buffer each). */
static const char *
shown(const unsigned char *p, size_t len, char *out, size_t outlen)
{
    size_t i, o = 0;

    for (i = 0; i < len && o + 5 < outlen; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f) {
            out[o++] = (char)p[i];
        } else {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", p[i]);
        }
    }
    out[o] = '\0';
    return out;
}

/*
 * Parse p whole and every prefix of it.  For a header that parses, every
 * shorter prefix must say AGAIN and every longer one OK with the same
 * result; for a bad one, prefixes say AGAIN until the first INVALID and
 * INVALID from there on.  Returns the whole-input result, *h filled.
 */
static int
parse_all_ways(const char *name, const unsigned char *p, size_t len,
               struct proxy_header *h)
{
    struct proxy_header hk;
    const char *why = NULL;
    size_t k, bad_at = 0;
    int rc, rk, seen_invalid = 0, monotonic = 1;

    rc = proxy_protocol_parse(p, len, h, &why);
    for (k = 0; k < len; k++) {
        rk = proxy_protocol_parse(p, k, &hk, NULL);
        if (rc == PROXY_OK) {
            if (k < h->len ? rk != PROXY_AGAIN
                : rk != PROXY_OK || hk.len != h->len || hk.kind != h->kind)
            {
                monotonic = 0;
                bad_at = k;
                break;
            }
        } else if (rc == PROXY_INVALID) {
            if (rk == PROXY_OK || (seen_invalid && rk != PROXY_INVALID)) {
                monotonic = 0;
                bad_at = k;
                break;
            }
            seen_invalid |= rk == PROXY_INVALID;
        } else if (rk != PROXY_AGAIN) {
            monotonic = 0;
            bad_at = k;
            break;
        }
    }
    ok(monotonic, "%s: byte by byte agrees with whole input", name);
    if (!monotonic) {
        printf("#   diverges at prefix %zu\n", bad_at);
    }
    if (rc == PROXY_INVALID) {
        ok(why != NULL && *why != '\0', "%s: has a reason (%s)", name,
           why != NULL ? why : "");
    }
    return rc;
}

/* A v1 line that must parse to addresses. */
static void
v1_good(const char *line, size_t extra, const char *src, const char *dst)
{
    struct proxy_header h;
    char a[80], name[120];
    int rc;


    shown((const unsigned char *)line, strlen(line), name, sizeof(name));
    rc = parse_all_ways(name, (const unsigned char *)line, strlen(line), &h);
    is_int(rc, PROXY_OK, "v1 ok: %s", name);
    if (rc != PROXY_OK) {
        return;
    }
    is_int(h.version, 1, "  version 1");
    is_int(h.len, strlen(line) - extra, "  length");
    if (src == NULL) {
        is_int(h.kind, PROXY_UNKNOWN, "  UNKNOWN");
        return;
    }
    is_int(h.kind, PROXY_ADDR, "  addresses");
    is_str(addr_str(&h.src, a, sizeof(a)), src, "  source");
    is_str(addr_str(&h.dst, a, sizeof(a)), dst, "  destination");
}

static void
v1_bad(const char *line, size_t len)
{
    struct proxy_header h;
    char name[120];
    int rc;


    shown((const unsigned char *)line, len, name, sizeof(name));
    rc = parse_all_ways(name, (const unsigned char *)line, len, &h);
    is_int(rc, PROXY_INVALID, "v1 invalid: %s", name);
}

static void
test_v1(void)
{
    char longline[200];
    size_t i;

    v1_good("PROXY TCP4 192.0.2.1 198.51.100.2 56324 143\r\n", 0,
            "192.0.2.1:56324", "198.51.100.2:143");
    v1_good("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", 0,
            "0.0.0.0:0", "255.255.255.255:65535");
    v1_good("PROXY TCP6 2001:db8::1 2001:DB8::2 1 993\r\n", 0,
            "[2001:db8::1]:1", "[2001:db8::2]:993");
    v1_good("PROXY TCP6 ::ffff:192.0.2.1 ::1 10 20\r\n", 0,
            "[::ffff:192.0.2.1]:10", "[::1]:20");
    v1_good("PROXY UNKNOWN\r\n", 0, NULL, NULL);
    /* the spec's worst case: exactly 107 bytes */
    v1_good("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
            0, NULL, NULL);
    /* what the client sends next stays outside the header */
    v1_good("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nA1 CAPABILITY\r\n", 15,
            "192.0.2.1:1", "192.0.2.2:2");

#define BAD(s) v1_bad((s), sizeof(s) - 1)
    BAD("PROXY TCP4 192.0.2.01 198.51.100.2 56324 143\r\n");
    BAD("PROXY TCP4 192.0.2.1 198.51.100.2 056324 143\r\n");
    BAD("PROXY TCP4 192.0.2.1 198.51.100.2 56324 00\r\n");
    BAD("PROXY TCP4 192.0.2.1 198.51.100.2 65536 143\r\n");
    BAD("PROXY TCP4 192.0.2.1 198.51.100.2 123456 143\r\n");
    BAD("PROXY TCP4 192.0.2.1 198.51.100.2 +1 143\r\n");
    BAD("PROXY TCP4 192.0.2.1 198.51.100.2 -1 143\r\n");
    BAD("PROXY TCP4 2001:db8::1 198.51.100.2 1 143\r\n");
    BAD("PROXY TCP6 192.0.2.1 2001:db8::2 1 143\r\n");
    BAD("PROXY TCP6 fe80::1%eth0 ::1 1 143\r\n");
    BAD("PROXY TCP4 192.0.2 198.51.100.2 1 143\r\n");
    BAD("PROXY TCP4 192.0.2.1.5 198.51.100.2 1 143\r\n");
    BAD("PROXY TCP4 192.0.2.256 198.51.100.2 1 143\r\n");
    BAD("PROXY TCP4  192.0.2.1 198.51.100.2 1 143\r\n");
    BAD("PROXY TCP4 192.0.2.1 198.51.100.2 1 143 \r\n");
    BAD("PROXY TCP4 192.0.2.1 198.51.100.2 1 143 x\r\n");
    BAD("PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n");
    BAD("PROXY TCP4 192.0.2.1 198.51.100.2 1 \r\n");
    BAD("PROXY TCP4 192.0.2.1\r\n");
    BAD("PROXY TCP4\r\n");
    BAD("PROXY \r\n");
    BAD("PROXY UNKNOWNX\r\n");
    BAD("PROXY TCP5 192.0.2.1 198.51.100.2 1 143\r\n");
    BAD("PROXY tcp4 192.0.2.1 198.51.100.2 1 143\r\n");
    BAD("proxy TCP4 192.0.2.1 198.51.100.2 1 143\r\n");
    BAD("PROXY\tTCP4 192.0.2.1 198.51.100.2 1 143\r\n");
    BAD("PROXY TCP4 192.0.2.1 198.51.100.2 1 143\n");
    BAD("PROXY TCP4 192.0.2.1 198.51.100.2 1 143\r\r\n");
    BAD("PROXY TCP4 192.0.2.1 198.51.100.2 1 143\rX");
    BAD("PROXY TCP4 192.0.2.1\0 198.51.100.2 1 143\r\n");
    BAD("PROXY TCP4 192.0.2.1 198.51.100.2 1 14\xb3\r\n");
    BAD("GET / HTTP/1.0\r\n");
    BAD("A1 LOGIN user pass\r\n");
    BAD("PROXYTCP4 192.0.2.1 198.51.100.2 1 143\r\n");
#undef BAD

    /* 108 bytes with the CRLF: one more than the spec allows */
    memcpy(longline, "PROXY UNKNOWN ", 14);
    for (i = 14; i < 106; i++) {
        longline[i] = 'x';
    }
    memcpy(longline + 106, "\r\n", 2);
    v1_bad(longline, 108);
    /* no CRLF at all in a long run */
    memset(longline + 14, 'x', sizeof(longline) - 14);
    v1_bad(longline, sizeof(longline));
}

/* Build a v2 header: 16 fixed bytes + payload. */
static size_t
v2(unsigned char *out, unsigned ver_cmd, unsigned fam_tp,
   const unsigned char *payload, size_t plen)
{
    memcpy(out, sig, 12);
    out[12] = (unsigned char)ver_cmd;
    out[13] = (unsigned char)fam_tp;
    out[14] = (unsigned char)(plen >> 8);
    out[15] = (unsigned char)(plen & 0xff);
    if (plen > 0) {
        memcpy(out + 16, payload, plen);
    }
    return 16 + plen;
}

static const unsigned char inet_block[12] = {
    192, 0, 2, 1,  198, 51, 100, 2,  0xdc, 0x04,  0x00, 0x8f
};

static void
v2_expect(const char *name, const unsigned char *p, size_t len, int want_rc,
          int want_kind, const char *src, const char *dst, unsigned ntlv)
{
    struct proxy_header h;
    char a[80];
    int rc;

    rc = parse_all_ways(name, p, len, &h);
    is_int(rc, want_rc, "v2 %s: result", name);
    if (rc != PROXY_OK || want_rc != PROXY_OK) {
        return;
    }
    is_int(h.version, 2, "  version 2");
    is_int(h.kind, want_kind, "  kind");
    if (src != NULL) {
        is_str(addr_str(&h.src, a, sizeof(a)), src, "  source");
        is_str(addr_str(&h.dst, a, sizeof(a)), dst, "  destination");
    }
    is_int(h.ntlv, ntlv, "  TLVs skipped");
}

static void
test_v2(void)
{
    unsigned char b[5000], pl[4200];
    size_t n, m;
    struct proxy_header h;

    n = v2(b, 0x21, 0x11, inet_block, sizeof(inet_block));
    v2_expect("inet", b, n, PROXY_OK, PROXY_ADDR, "192.0.2.1:56324",
              "198.51.100.2:143", 0);
    /* followed by the client's first bytes */
    memcpy(b + n, "EHLO x\r\n", 8);
    ok(proxy_protocol_parse(b, n + 8, &h, NULL) == PROXY_OK && h.len == n,
       "v2 inet: trailing bytes are not consumed");

    memset(pl, 0, 36);
    pl[15] = 1;                                 /* ::1 */
    pl[16] = 0x20; pl[17] = 0x01; pl[18] = 0x0d; pl[19] = 0xb8; pl[31] = 2;
    pl[32] = 0x30; pl[33] = 0x39;               /* 12345 */
    pl[34] = 0x03; pl[35] = 0xe1;               /* 993 */
    n = v2(b, 0x21, 0x21, pl, 36);
    v2_expect("inet6", b, n, PROXY_OK, PROXY_ADDR, "[::1]:12345",
              "[2001:db8::2]:993", 0);

    n = v2(b, 0x20, 0x00, NULL, 0);
    v2_expect("local", b, n, PROXY_OK, PROXY_LOCAL, NULL, NULL, 0);
    n = v2(b, 0x20, 0x11, inet_block, sizeof(inet_block));
    v2_expect("local with addresses", b, n, PROXY_OK, PROXY_LOCAL, NULL,
              NULL, 0);
    /* LOCAL ignores its payload, even one that is too short for INET */
    n = v2(b, 0x20, 0x11, inet_block, 3);
    v2_expect("local short payload", b, n, PROXY_OK, PROXY_LOCAL, NULL,
              NULL, 0);
    n = v2(b, 0x21, 0x00, NULL, 0);
    v2_expect("proxy unspec", b, n, PROXY_OK, PROXY_UNKNOWN, NULL, NULL, 0);

    memset(pl, 0, 216);
    memcpy(pl, "/run/lb.sock", 12);
    n = v2(b, 0x21, 0x31, pl, 216);
    v2_expect("proxy unix", b, n, PROXY_OK, PROXY_UNKNOWN, NULL, NULL, 0);

    /* TLVs: ALPN "imap", AUTHORITY "mail.example", NOOP empty, SSL */
    m = 0;
    memcpy(pl, inet_block, 12);
    m = 12;
    memcpy(pl + m, "\x01\x00\x04imap", 7);
    m += 7;
    memcpy(pl + m, "\x02\x00\x0cmail.example", 15);
    m += 15;
    memcpy(pl + m, "\x04\x00\x00", 3);
    m += 3;
    memcpy(pl + m, "\x20\x00\x05\x01\x00\x00\x00\x00", 8);
    m += 8;
    n = v2(b, 0x21, 0x11, pl, m);
    v2_expect("inet with TLVs", b, n, PROXY_OK, PROXY_ADDR,
              "192.0.2.1:56324", "198.51.100.2:143", 4);
    /* a large TLV, still under the bound */
    memcpy(pl, inet_block, 12);
    pl[12] = 0xe0;
    pl[13] = (4000 - 15) >> 8;
    pl[14] = (4000 - 15) & 0xff;
    memset(pl + 15, 'z', 4000 - 15);
    n = v2(b, 0x21, 0x11, pl, 4000);
    v2_expect("inet with a 4 KB TLV", b, n, PROXY_OK, PROXY_ADDR,
              "192.0.2.1:56324", "198.51.100.2:143", 1);

    /* bad ones */
    n = v2(b, 0x11, 0x11, inet_block, 12);
    v2_expect("version 1 nibble", b, n, PROXY_INVALID, 0, NULL, NULL, 0);
    ok(proxy_protocol_parse(b, 13, &h, NULL) == PROXY_INVALID,
       "v2 bad version: refused at its byte");
    n = v2(b, 0x22, 0x11, inet_block, 12);
    v2_expect("command 2", b, n, PROXY_INVALID, 0, NULL, NULL, 0);
    n = v2(b, 0x21, 0x41, inet_block, 12);
    v2_expect("family 4", b, n, PROXY_INVALID, 0, NULL, NULL, 0);
    n = v2(b, 0x21, 0x13, inet_block, 12);
    v2_expect("transport 3", b, n, PROXY_INVALID, 0, NULL, NULL, 0);
    n = v2(b, 0x21, 0x12, inet_block, 12);
    v2_expect("datagram", b, n, PROXY_INVALID, 0, NULL, NULL, 0);
    n = v2(b, 0x21, 0x11, inet_block, 11);
    v2_expect("inet block too short", b, n, PROXY_INVALID, 0, NULL, NULL, 0);
    n = v2(b, 0x21, 0x21, pl, 35);
    v2_expect("inet6 block too short", b, n, PROXY_INVALID, 0, NULL, NULL,
              0);
    n = v2(b, 0x21, 0x31, pl, 215);
    v2_expect("unix block too short", b, n, PROXY_INVALID, 0, NULL, NULL, 0);
    memcpy(pl, inet_block, 12);
    memcpy(pl + 12, "\x01\x00", 2);
    n = v2(b, 0x21, 0x11, pl, 14);
    v2_expect("truncated TLV", b, n, PROXY_INVALID, 0, NULL, NULL, 0);
    memcpy(pl + 12, "\x01\x00\x05imap", 7);
    n = v2(b, 0x21, 0x11, pl, 19);
    v2_expect("TLV past the end", b, n, PROXY_INVALID, 0, NULL, NULL, 0);
    memset(pl, 0, sizeof(pl));
    n = v2(b, 0x21, 0x11, pl, PROXY_V2_MAX - 16 + 1);
    v2_expect("longer than the bound", b, n, PROXY_INVALID, 0, NULL, NULL,
              0);
    ok(proxy_protocol_parse(b, 16, &h, NULL) == PROXY_INVALID,
       "v2 too long: refused from its length field");
    n = v2(b, 0x21, 0x11, inet_block, 12);
    b[7] = 'q';
    v2_expect("bad signature", b, n, PROXY_INVALID, 0, NULL, NULL, 0);
    ok(proxy_protocol_parse((const unsigned char *)"\r\n\r\n\0\r\nQUIT\r", 12,
                            &h, NULL) == PROXY_INVALID,
       "v2: signature ending in CR refused");
    ok(proxy_protocol_parse((const unsigned char *)"", 0, &h, NULL)
       == PROXY_AGAIN, "empty input: again");
}

static void
test_build(void)
{
    struct sockaddr_in a4, b4;
    struct sockaddr_in6 a6, b6;
    struct sockaddr_un un;
    struct proxy_header h;
    char out[PROXY_V1_MAX + 1], s[80];
    int n;

    memset(&a4, 0, sizeof(a4));
    a4.sin_family = AF_INET;
    a4.sin_port = htons(56324);
    inet_pton(AF_INET, "192.0.2.1", &a4.sin_addr);
    b4 = a4;
    b4.sin_port = htons(143);
    inet_pton(AF_INET, "198.51.100.2", &b4.sin_addr);
    memset(&a6, 0, sizeof(a6));
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(1);
    inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);
    b6 = a6;
    b6.sin6_port = htons(65535);
    inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
              &b6.sin6_addr);
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;

    n = proxy_protocol_v1_build((struct sockaddr *)&a4,
                                (struct sockaddr *)&b4, out, sizeof(out));
    is_str(out, "PROXY TCP4 192.0.2.1 198.51.100.2 56324 143\r\n",
           "build TCP4");
    is_int(n, (int)strlen(out), "build returns the length");
    ok(proxy_protocol_parse((unsigned char *)out, (size_t)n, &h, NULL)
       == PROXY_OK && h.len == (size_t)n
       && strcmp(addr_str(&h.src, s, sizeof(s)), "192.0.2.1:56324") == 0,
       "build TCP4 parses back");

    n = proxy_protocol_v1_build((struct sockaddr *)&a6,
                                (struct sockaddr *)&b6, out, sizeof(out));
    is_str(out, "PROXY TCP6 2001:db8::1 ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
           "ffff 1 65535\r\n", "build TCP6");
    ok(proxy_protocol_parse((unsigned char *)out, (size_t)n, &h, NULL)
       == PROXY_OK, "build TCP6 parses back");

    n = proxy_protocol_v1_build((struct sockaddr *)&a4,
                                (struct sockaddr *)&b6, out, sizeof(out));
    is_str(out, "PROXY TCP6 ::ffff:192.0.2.1 ffff:ffff:ffff:ffff:ffff:ffff:"
           "ffff:ffff 56324 65535\r\n", "build mixed: IPv4-mapped TCP6");
    ok(proxy_protocol_parse((unsigned char *)out, (size_t)n, &h, NULL)
       == PROXY_OK, "build mixed parses back");

    n = proxy_protocol_v1_build((struct sockaddr *)&un,
                                (struct sockaddr *)&b4, out, sizeof(out));
    is_str(out, "PROXY UNKNOWN\r\n", "build unix: UNKNOWN");
    n = proxy_protocol_v1_build(NULL, NULL, out, sizeof(out));
    is_str(out, "PROXY UNKNOWN\r\n", "build without addresses: UNKNOWN");

    n = proxy_protocol_v1_build((struct sockaddr *)&a4,
                                (struct sockaddr *)&b4, out, 20);
    is_int(n, -1, "build into a short buffer: -1");
    n = proxy_protocol_v1_build((struct sockaddr *)&a4,
                                (struct sockaddr *)&b4, out, 45);
    is_int(n, -1, "build: no room for the NUL is -1");
    n = proxy_protocol_v1_build((struct sockaddr *)&a4,
                                (struct sockaddr *)&b4, out, 46);
    is_int(n, 45, "build: exact room");
}

/* A child that writes p[0..len) one byte per millisecond, then exits. */
static pid_t
trickle(int fd, const void *p, size_t len, int close_early)
{
    const unsigned char *b = p;
    pid_t pid = fork();
    size_t i;
    struct timespec ts = { 0, 1000000 };

    if (pid != 0) {
        return pid;
    }
    for (i = 0; i < len; i++) {
        if (write(fd, b + i, 1) != 1) {
            _exit(1);
        }
        nanosleep(&ts, NULL);
    }
    if (!close_early) {
        /* keep the socket open until the parent has read */
        ts.tv_sec = 2;
        ts.tv_nsec = 0;
        nanosleep(&ts, NULL);
    }
    _exit(0);
}

/* A session that should leave its worker whenever it would wait. */
static int
park_yes(void *arg)
{
    (void)arg;
    return 1;
}

static void
test_read(void)
{
    static const char hdr[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 143"
                              "\r\nA1 CAPABILITY\r\n";
    unsigned char b[600], pl[400];
    struct proxy_header h;
    struct conn c;
    char err[200], s[80];
    int sv[2], rc, status;
    msec_t t0;
    pid_t pid;
    size_t n;

    /* whole header plus the client's next line in one write */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) {
        ok(0, "socketpair");
        return;
    }
    conn_init(&c, sv[0], 4096);
    c.deadline = clock_now() + 5000;
    ok(write(sv[1], hdr, sizeof(hdr) - 1) == (ssize_t)sizeof(hdr) - 1,
       "read: wrote header and command");
    rc = proxy_protocol_read(&c, &h, err, sizeof(err));
    is_int(rc, 0, "read v1: ok");
    is_str(addr_str(&h.src, s, sizeof(s)), "192.0.2.1:56324",
           "read v1: source");
    /* nothing past the header is taken from the socket: a TLS ClientHello
     * there must reach GnuTLS, which reads the fd itself */
    ok(buf_len(&c.in) == 0, "read v1: nothing buffered in c->in");
    ok(recv(sv[0], pl, sizeof(pl), MSG_DONTWAIT) == 15
       && memcmp(pl, "A1 CAPABILITY\r\n", 15) == 0,
       "read v1: the command stays in the socket");
    conn_close(&c);
    close(sv[1]);

    /* a header that stops halfway while the session may park: PARK with
     * what came kept, then the rest */
    {
        struct proxy_reading r = { .have = 0 };

        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
        conn_init(&c, sv[0], 4096);
        c.deadline = clock_now() + 5000;
        ok(write(sv[1], hdr, 20) == 20, "parkable: wrote 20 bytes");
        rc = proxy_protocol_read_parkable(&c, &h, &r, park_yes, NULL, err,
                                          sizeof(err));
        ok(rc == PROXY_READ_PARK && r.have == 20,
           "parkable: PARK with the 20 bytes kept (%d, %zu)", rc, r.have);
        ok(write(sv[1], hdr + 20, sizeof(hdr) - 1 - 20)
           == (ssize_t)(sizeof(hdr) - 1 - 20), "parkable: wrote the rest");
        rc = proxy_protocol_read_parkable(&c, &h, &r, park_yes, NULL, err,
                                          sizeof(err));
        is_int(rc, 0, "parkable: the header, read on");
        is_str(addr_str(&h.src, s, sizeof(s)), "192.0.2.1:56324",
               "parkable: source");
        conn_close(&c);
        close(sv[1]);
    }

    /* v2 with TLVs, one byte at a time, then more client bytes */
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    conn_init(&c, sv[0], 4096);
    c.deadline = clock_now() + 10000;
    memcpy(pl, inet_block, 12);
    memcpy(pl + 12, "\x01\x00\x04imap", 7);
    n = v2(b, 0x21, 0x11, pl, 19);
    memcpy(b + n, "A1 NOOP\r\n", 9);
    pid = trickle(sv[1], b, n + 9, 0);
    rc = proxy_protocol_read(&c, &h, err, sizeof(err));
    is_int(rc, 0, "read v2 byte by byte: ok");
    is_int(h.len, n, "read v2: header length");
    is_int(h.ntlv, 1, "read v2: TLV skipped");
    while (buf_len(&c.in) < 9 && conn_fill(&c) > 0) {
        /* bounded by the 9 bytes the child writes and the deadline */
    }
    ok(buf_len(&c.in) == 9 && memcmp(buf_head(&c.in), "A1 NOOP\r\n", 9) == 0,
       "read v2: only the header was consumed");
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    conn_close(&c);
    close(sv[1]);

    /* not a PROXY header */
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    conn_init(&c, sv[0], 4096);
    c.deadline = clock_now() + 5000;
    ok(write(sv[1], "A1 LOGIN a b\r\n", 14) == 14, "read bad: wrote");
    rc = proxy_protocol_read(&c, &h, err, sizeof(err));
    ok(rc == -1 && strstr(err, "invalid PROXY protocol header") != NULL,
       "read bad: refused (%s)", err);
    conn_close(&c);
    close(sv[1]);

    /* silent client: the deadline is honoured */
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    conn_init(&c, sv[0], 4096);
    t0 = clock_now();
    c.deadline = t0 + 200;
    ok(write(sv[1], "PROXY TCP4 ", 11) == 11, "read timeout: wrote part");
    rc = proxy_protocol_read(&c, &h, err, sizeof(err));
    is_str(err, "client timed out (110: Connection timed out)",
           "read timeout: NGINX's words");
    ok(rc == PROXY_READ_FAILED, "read timeout: not a broken header");
    /* "timed out" says the deadline ended the wait (the peer never sends
     * more); only the lower bound is about time: not before the deadline */
    ok(clock_now() - t0 >= 150, "read timeout: not before the deadline (%lld)",
       (long long)(clock_now() - t0));
    conn_close(&c);
    close(sv[1]);

    /* closed half-way */
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    conn_init(&c, sv[0], 4096);
    c.deadline = clock_now() + 5000;
    ok(write(sv[1], "PROXY TCP4 1.2", 14) == 14, "read eof: wrote part");
    close(sv[1]);
    rc = proxy_protocol_read(&c, &h, err, sizeof(err));
    ok(rc == PROXY_READ_FAILED && strstr(err, "closed") != NULL,
       "read eof: not a broken header (%s)", err);
    conn_close(&c);

    /* a v2 header declaring more than postern's bound (PROXY_V2_MAX) */
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    conn_init(&c, sv[0], 64);
    c.deadline = clock_now() + 5000;
    memcpy(b, "\r\n\r\n\0\r\nQUIT\n", 12);
    b[12] = 0x21;
    b[13] = 0x11;
    b[14] = 0x20;           /* 8192 bytes of addresses and TLVs */
    b[15] = 0x00;
    ok(write(sv[1], b, 16) == 16, "read too long: wrote");
    rc = proxy_protocol_read(&c, &h, err, sizeof(err));
    ok(rc == -1 && strstr(err, "invalid PROXY protocol header") != NULL,
       "read too long: refused (%s)", err);
    conn_close(&c);
    close(sv[1]);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_v1();
    test_v2();
    test_build();
    test_read();
    return tap_done();
}
