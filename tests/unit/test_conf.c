/*
 * test_conf.c - loading postern.conf: every setting accepted with a good
 * value and refused with a bad one (with the exact "FILE:LINE: SETTING:"
 * message), every error class, inheritance from mail to servers, the
 * protocol from the port, computed defaults, the auth service rule, the
 * logs, that `postern -T` output loads back to the same thing, and that
 * an auth_http host is looked up once per load (getaddrinfo counted below).
 *
 * Files are written under /tmp/postern-test-conf-PID and removed at the end.
 */

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "conf_int.h"
#include "tap.h"

/* getaddrinfo() calls naming "localhost": this definition stands in front
 * of libc's for the whole program and passes each call on. */
static int localhost_lookups;

int
getaddrinfo(const char *node, const char *service,
            const struct addrinfo *hints, struct addrinfo **res)
{
    typedef int (*gai_fn)(const char *, const char *,
                          const struct addrinfo *, struct addrinfo **);
    static gai_fn real;

    if (real == NULL) {
        *(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
        if (real == NULL) {
            return EAI_SYSTEM;
        }
    }
    if (node != NULL && strcmp(node, "localhost") == 0) {
        localhost_lookups++;
    }
    return real(node, service, hints, res);
}

static char dir[256];

/* A self-signed ECDSA test certificate (valid until 2126) and its key. */
static const char cert_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBiDCCAS+gAwIBAgIBATAKBggqhkjOPQQDAjAXMRUwEwYDVQQDEwxwb3N0ZXJu\n"
    "IHRlc3QwIBcNMjYxMTIxMDYxMjI5WhgPMjEyNjEwMjgwNjEyMjlaMBcxFTATBgNV\n"
    "BAMTDHBvc3Rlcm4gdGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABINJ0Dft\n"
    "EY5DT9e7qUyY1C3tZw7d3AgbJ6LDYC0Bb05ogttPE1h1kscG5yc5gAubmbk990qw\n"
    "UcjBqpfQ+loGb8yjajBoMAwGA1UdEwEB/wQCMAAwFAYDVR0RBA0wC4IJbG9jYWxo\n"
    "b3N0MBMGA1UdJQQMMAoGCCsGAQUFBwMBMA4GA1UdDwEB/wQEAwIHgDAdBgNVHQ4E\n"
    "FgQUJrKLT2PmkgO4y32GYVpSvK51in8wCgYIKoZIzj0EAwIDRwAwRAIgcD93DAxy\n"
    "MJNRZAbOt1JD/5rFdLK0hyW+ZYvys84KxtICIG2y3GN8nQjc/DHSP+juBG5bTgX0\n"
    "6Jj/NWscyKWXhy5k\n"
    "-----END CERTIFICATE-----\n";
static const char key_pem[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHgCAQEEIQD7MywAPuHEMuouZJV1BIWZQ1nxfovYr1X40Kx2NofSo6AKBggqhkjO\n"
    "PQMBB6FEA0IABINJ0DftEY5DT9e7qUyY1C3tZw7d3AgbJ6LDYC0Bb05ogttPE1h1\n"
    "kscG5yc5gAubmbk990qwUcjBqpfQ+loGb8w=\n"
    "-----END EC PRIVATE KEY-----\n";

/* dir/name in a rotating static buffer */
static const char *
path_of(const char *name)
{
    static char buf[4][512];
    static int n;

    n = (n + 1) % 4;
    snprintf(buf[n], sizeof(buf[n]), "%s/%s", dir, name);
    return buf[n];
}

/* Write text into dir/name (bail out on failure). */
static void
write_file(const char *name, const char *text)
{
    FILE *f = fopen(path_of(name), "w");

    if (f == NULL) {
        printf("Bail out! cannot write %s\n", path_of(name));
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

/* Write text to dir/t.conf and load it. */
static struct conf *
load_text(const char *text, char *err, size_t errlen)
{
    write_file("t.conf", text);
    return conf_load(path_of("t.conf"), err, errlen);
}

/* Loading text fails with exactly "dir/t.conf:LINE: what". */
static void
load_fails(const char *text, int line, const char *what, const char *name)
{
    char err[1024], want[1024];
    struct conf *c = load_text(text, err, sizeof(err));

    snprintf(want, sizeof(want), "%s:%d: %s", path_of("t.conf"), line, what);
    if (!ok(c == NULL, "%s: refused", name)) {
        conf_unref(c);
    }
    is_str(err, want, "%s: message", name);
}

/* Loading text succeeds (the caller unrefs). */
static struct conf *
load_ok(const char *text, const char *name)
{
    char err[1024];
    struct conf *c = load_text(text, err, sizeof(err));

    if (!ok(c != NULL, "%s: loads", name)) {
        printf("#   %s\n", err);
    }
    return c;
}

/* ---- every setting: a good and a bad value ------------------------- */

#define TLSFILES "; ssl_certificate = \"cert.pem\"; " \
                 "ssl_certificate_key = \"key.pem\""
#define X61 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define X63 X61 "xx"
#define FLAGMSG "expected a flag (true, false, \"on\" or \"off\")"

static const struct row {
    const char *name, *good, *bad, *what;   /* what: "~" = substring */
} rows[] = {
    { "daemon", "\"on\"", "5", FLAGMSG },
    { "user", "\"nobody nogroup\"", "\"a b c\"",
      "invalid value \"a b c\", expected \"USER [GROUP]\"" },
    { "pid", "\"run/p.pid\"", "\"\"", "empty value" },
    { "error_log", "[\"stderr info\", \"log/e.log\"]", "\"stderr loud\"",
      "~loud" },
    { "error_log", "\"syslog:server=127.0.0.1:5514\"",
      "\"syslog:server=127.0.0.1:99999\"", "~invalid syslog port" },
    { "worker_threads", "4", "0", "0 is out of range 1..10000" },
    { "relay_threads", "\"auto\"", "\"2\"",
      "invalid value \"2\", expected an integer or \"auto\"" },
    { "relay_threads", "2", "true", "expected an integer or \"auto\"" },
    { "worker_connections", "10", "-5", "-5 is out of range 1..10000000" },
    /* libconfig 1.5 keeps 32 bits of a number without L, silently */
    { "worker_connections", "10", "4294967297",
      "4294967297 does not fit in 32 bits (libconfig reads it as 1): "
      "write 4294967297L" },
    { "proxy_timeout", "3000000000L", "3000000000",
      "3000000000 does not fit in 32 bits (libconfig reads it as "
      "-1294967296): write 3000000000L" },
    { "proxy_buffer", "65536", "0x100010000",
      "0x100010000 does not fit in 32 bits (libconfig reads it as 65536): "
      "write 0x100010000L" },
    { "max_errors", "3", "-2147483649",
      "-2147483649 does not fit in 32 bits (libconfig reads it as "
      "2147483647): write -2147483649L" },
    { "worker_rlimit_nofile", "4096", "0", "0 is out of range 1..2147483647" },
    { "shutdown_timeout", "\"10s\"", "\"10x\"", "invalid time \"10x\"" },
    { "listen", "[\"127.0.0.1:1143\", \"127.0.0.1:1144 proxy_protocol "
      "backlog=16\", \"unix:imap.sock\"]", "\"127.0.0.1:99999\"",
      "invalid port in \"127.0.0.1:99999\"" },
    { "protocol", "\"pop3\"", "\"nntp\"",
      "invalid value \"nntp\", expected one of \"imap\", \"pop3\", "
      "\"smtp\"" },
    { "server_name", "\"mx.example.com\"", "true", "expected a string" },
    /* a DNS name's 253 bytes at most: it is in the CRAM-MD5 challenge */
    { "server_name", "\"" X63 "." X63 "." X63 "." X61 "\"",
      "\"" X63 "." X63 "." X63 "." X61 "x\"",
      "254 bytes long, more than 253" },
    { "timeout", "\"1h30m\"", "\"30 1h\"", "invalid time \"30 1h\"" },
    { "timeout", "\"1s\"", "0", "time out of range: the least is \"1ms\"" },
    { "proxy_timeout", "\"1s\"", "0",
      "time out of range: the least is \"1ms\"" },
    { "max_errors", "3", "100001", "100001 is out of range 0..100000" },
    { "resolver", "\"127.0.0.1 valid=30s\"", "\"valid=30s\"",
      "no resolver address" },
    { "resolver_timeout", "5000", "\"\"", "invalid time \"\"" },
    { "set_real_ip_from", "[\"10.0.0.0/8\", \"unix:\"]", "\"10.0.0.0/33\"",
      "invalid address \"10.0.0.0/33\"" },
    { "preauth_per_client", "2", "0", "0 is out of range 1..100000" },
    { "access", "[\"deny 10.0.0.1\", \"allow all\"]", "\"permit all\"",
      "invalid rule \"permit all\"" },
    { "auth_http", "\"unix:/run/auth.sock:/auth\"", "\"https://a/\"",
      "https is not supported in \"https://a/\"" },
    { "auth_http_header", "( [\"X-Key\", \"v\"] )",
      "( [\"X Key\", \"v\"] )", "invalid header name \"X Key\"" },
    { "auth_http_timeout", "\"250ms\"", "[1]",
      "expected a time (\"60s\", \"1h30m\" or a number)" },
    { "auth_http_keepalive", "16", "1025", "1025 is out of range 0..1024" },
    { "auth_http_pass_client_cert", "\"on\"", "\"yes\"",
      "invalid value \"yes\", expected \"on\" or \"off\"" },
    { "imap_auth", "[\"plain\", \"login\", \"cram-md5\", \"external\"]",
      "\"apop\"", "unknown method \"apop\"" },
    { "pop3_auth", "[\"apop\", \"plain\"]", "\"login\"",
      "unknown method \"login\"" },
    { "smtp_auth", "\"none\"", "[]", "at least one method is needed" },
    { "auth_file", "\"users\"", "\"\"", "empty value" },
    { "imap_capabilities", "\"IMAP4rev1\"", "[1, 2]",
      "expected a string or a list of strings" },
    { "imap_capabilities", "[\"IMAP4rev1\", \"LITERAL+\", \"ID\"]",
      "[\"IMAP4rev1\", \"X\\x01(Y\"]",
      "\"X?(Y\": not an IMAP atom (no control characters, spaces, 8-bit "
      "bytes or any of ( ) { % * \" \\ ])" },
    { "imap_capabilities", "[]", "[\"IMAP4rev1\", \"STARTTLS\"]",
      "\"STARTTLS\": postern announces STARTTLS itself, when starttls is "
      "on" },
    { "imap_capabilities", "\"SASL-IR\"", "\"auth=plain\"",
      "\"auth=plain\": postern announces the AUTH= mechanisms itself, as "
      "imap_auth says" },
    { "imap_capabilities", "\"IDLE\"", "\"LOGINDISABLED\"",
      "~postern announces LOGINDISABLED itself" },
    { "imap_client_buffer", "\"16k\"", "100",
      "100 is out of range 512..67108864" },
    { "pop3_capabilities", "[\"TOP\"]", "5",
      "expected a string or a list of strings" },
    { "pop3_capabilities", "[\"TOP\", \"PIPELINING\"]", "[\"TOP\", \"STLS\"]",
      "\"STLS\": postern announces STLS itself, when starttls is on" },
    { "pop3_capabilities", "\"UIDL\"", "\"SASL PLAIN\"",
      "\"SASL PLAIN\": postern announces the SASL mechanisms itself, as "
      "pop3_auth says" },
    { "pop3_capabilities", "\"SASLX\"", "\"A\\nB\"",
      "\"A_B\": not one line of printable ASCII" },
    { "smtp_capabilities", "[\"SIZE 10485760\", \"8BITMIME\"]", "[\"\"]",
      "empty value" },
    { "smtp_capabilities", "\"AUTHX\"", "\"AUTH LOGIN\"",
      "\"AUTH LOGIN\": postern announces the AUTH mechanisms itself, as "
      "smtp_auth says" },
    { "smtp_capabilities", "\"ETRN\"", "\"auth=login\"",
      "~postern announces the AUTH mechanisms itself" },
    { "smtp_capabilities", "\"DSN\"", "\"STARTTLS\"",
      "\"STARTTLS\": postern announces STARTTLS itself, when starttls is "
      "on" },
    { "smtp_capabilities", "\"VRFY\"", "\"SIZE\\n10\"",
      "\"SIZE_10\": not one line of printable ASCII" },
    { "smtp_client_buffer", "8192", "\"8q\"", "invalid size \"8q\"" },
    { "smtp_greeting_delay", "\"1s\"", "\"-1s\"", "invalid time \"-1s\"" },
    { "proxy", "true", "1", FLAGMSG },
    { "proxy_buffer", "\"1m\"", "\"65m\"",
      "68157440 is out of range 512..67108864" },
    { "proxy_pass_error_message", "\"off\"", "\"\"",
      "invalid value \"\", expected \"on\" or \"off\"" },
    { "proxy_timeout", "\"1d\"", "true",
      "expected a time (\"60s\", \"1h30m\" or a number)" },
    { "proxy_protocol", "true", "\"true\"",
      "invalid value \"true\", expected \"on\" or \"off\"" },
    { "proxy_smtp_auth", "false", "0", FLAGMSG },
    { "xclient", "false", "[]", FLAGMSG },
    { "ssl", "true" TLSFILES, "\"sometimes\"",
      "invalid value \"sometimes\", expected \"on\" or \"off\"" },
    { "starttls", "\"only\"" TLSFILES, "\"always\"",
      "invalid value \"always\", expected one of \"off\", \"on\", "
      "\"only\"" },
    { "ssl_certificate", "[\"cert.pem\", \"cert.pem\"]", "7",
      "expected a string or a list of strings (file names)" },
    { "ssl_certificate_key", "\"key.pem\"", "false",
      "expected a string or a list of strings (file names)" },
    { "ssl_password_file", "\"pw\"", "[\"a\"]",
      "expected a string (a file name)" },
    { "ssl_protocols", "[\"TLSv1.3\", \"TLSv1.2\", \"TLSv1.1\", \"TLSv1\"]",
      "\"TLSv9\"", "unknown protocol \"TLSv9\"" },
    { "ssl_ciphers", "\"ECDHE+AESGCM\"", "\"\"", "empty value" },
    { "ssl_priority", "\"NORMAL\"", "1", "expected a string" },
    { "ssl_prefer_server_ciphers", "\"on\"", "\"1\"",
      "invalid value \"1\", expected \"on\" or \"off\"" },
    { "ssl_dhparam", "\"dh.pem\"", "\"\"", "empty value" },
    { "ssl_ecdh_curve", "\"prime256v1\"", "\"\"", "empty value" },
    { "ssl_session_cache", "\"builtin:1000 shared:MAIL:10m\"",
      "\"shared:MAIL\"", "invalid token \"shared:MAIL\"" },
    { "ssl_session_timeout", "600", "\"10ms\"", "invalid time \"10ms\"" },
    { "ssl_session_timeout", "\"1s\"", "\"0\"",
      "time out of range: the least is \"1s\"" },
    { "ssl_session_tickets", "false", "\"no\"",
      "invalid value \"no\", expected \"on\" or \"off\"" },
    { "ssl_session_ticket_key", "[\"t1.key\", \"t2.key\"]", "{ a = 1; }",
      "expected a string or a list of strings (file names)" },
    { "ssl_verify_client", "\"optional_no_ca\"", "\"maybe\"",
      "invalid value \"maybe\", expected one of \"off\", \"on\", "
      "\"optional\", \"optional_no_ca\"" },
    { "ssl_verify_depth", "2", "101", "101 is out of range 0..100" },
    { "ssl_client_certificate", "\"ca.pem\"", "\"\"", "empty value" },
    { "ssl_trusted_certificate", "\"ca.pem\"", "[]", "expected a string "
      "(a file name)" },
    { "ssl_crl", "\"crl.pem\"", "0", "expected a string (a file name)" },
    { "ssl_conf_command", NULL, "\"Options -SessionTicket\"",
      "OpenSSL-specific, not supported with GnuTLS (use ssl_priority)" },
};

/* The test document: TOP on line 2, the server's value on line 7, and an
 * optional extra mail value on line 4. */
static void
build(char *buf, size_t len, const char *name, const char *top,
      const char *mailv, const char *srv)
{
    const char *lp = "listen = \"127.0.0.1:1143\"; protocol = \"imap\";";

    if (strcmp(name, "listen") == 0) {
        lp = "protocol = \"imap\";";
    } else if (strcmp(name, "protocol") == 0) {
        lp = "listen = \"127.0.0.1:1143\";";
    }
    snprintf(buf, len,
             "# conf test\n"
             "%s\n"
             "mail = {\n"
             "    auth_http = \"http://127.0.0.1:9000/auth\"; %s\n"
             "    servers = ( {\n"
             "        %s\n"
             "        %s\n"
             "    } );\n"
             "};\n", top, mailv, lp, srv);
}

/* Tests of every setting. */
static void
test_every_setting(void)
{
    char text[4096], line[1024], err[1024], want[1024];
    struct conf *c;

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        const struct conf_setting *set = conf_setting_find(r->name);
        int top;

        if (!ok(set != NULL, "%s is in the table", r->name)) {
            continue;
        }
        top = (set->scope & SC_TOP) && !(set->scope & SC_SERVER);
        if (r->good != NULL) {
            snprintf(line, sizeof(line), "%s = %s;", r->name, r->good);
            build(text, sizeof(text), r->name, top ? line : "", "",
                  top ? "" : line);
            c = load_text(text, err, sizeof(err));
            if (!ok(c != NULL, "%s = %s: accepted", r->name, r->good)) {
                printf("#   %s\n", err);
            }
            conf_unref(c);
            if (!top && (set->scope & SC_MAIL)
                && strcmp(r->name, "auth_http") != 0
                && strcmp(r->name, "auth_file") != 0) {
                build(text, sizeof(text), r->name, "", line, "");
                c = load_text(text, err, sizeof(err));
                if (!ok(c != NULL, "%s = %s: accepted in mail", r->name,
                        r->good)) {
                    printf("#   %s\n", err);
                }
                conf_unref(c);
            }
        }
        snprintf(line, sizeof(line), "%s = %s;", r->name, r->bad);
        build(text, sizeof(text), r->name, top ? line : "", "",
              top ? "" : line);
        c = load_text(text, err, sizeof(err));
        if (!ok(c == NULL, "%s = %s: refused", r->name, r->bad)) {
            conf_unref(c);
        }
        if (r->what[0] == '~') {
            snprintf(want, sizeof(want), "%s:%d: %s: ", path_of("t.conf"),
                     top ? 2 : 7, r->name);
            ok(strncmp(err, want, strlen(want)) == 0
               && strstr(err, r->what + 1) != NULL,
               "%s = %s: message \"%s\"", r->name, r->bad, err);
        } else {
            snprintf(want, sizeof(want), "%s:%d: %s: %s", path_of("t.conf"),
                     top ? 2 : 7, r->name, r->what);
            is_str(err, want, "%s = %s: message", r->name, r->bad);
        }
    }
    /* the rows cover the whole table */
    for (size_t i = 0; i < conf_nsettings; i++) {
        const char *n = conf_settings[i].name;
        size_t k;

        if (strcmp(n, "mail") == 0 || strcmp(n, "servers") == 0) {
            continue;
        }
        for (k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
            if (strcmp(rows[k].name, n) == 0) {
                break;
            }
        }
        ok(k < sizeof(rows) / sizeof(rows[0]), "%s has a test row", n);
    }
}

/* ---- error classes ------------------------------------------------- */

#define MAIL_OPEN "mail = {\n    auth_http = \"127.0.0.1:9000\";\n"

/* Tests of errors. */
static void
test_errors(void)
{
    char err[1024], want[1024];
    struct conf *c;

    c = conf_load(path_of("missing.conf"), err, sizeof(err));
    ok(c == NULL, "a missing file is an error");
    snprintf(want, sizeof(want), "%s: cannot read: No such file or directory",
             path_of("missing.conf"));
    is_str(err, want, "missing file: message");

    c = load_text("daemon = true;\nworker_threads = ;\n", err, sizeof(err));
    ok(c == NULL, "a syntax error is an error");
    snprintf(want, sizeof(want), "%s:2: syntax error: ", path_of("t.conf"));
    ok(strncmp(err, want, strlen(want)) == 0 && strlen(err) > strlen(want),
       "syntax error: message \"%s\"", err);

    load_fails("daemon = true;\ndaemon = false;\n", 2,
               "syntax error: duplicate setting name", "duplicate setting");
    load_fails("daemon = true;\nfoo = 1;\n", 2, "foo: unknown setting",
               "unknown setting at the top");
    load_fails(MAIL_OPEN "    servers = ( { listen = \"143\";\n"
               "        imap_foo = 1; } );\n};\n", 4,
               "imap_foo: unknown setting", "unknown setting in a server");
    load_fails(MAIL_OPEN "    bar = \"x\";\n    servers = ( { listen = "
               "\"143\"; } );\n};\n", 3, "bar: unknown setting",
               "unknown setting in mail");
    load_fails("daemon = true;\n", 1,
               "mail: missing, the mail group is required", "missing mail");
    load_fails("mail = 5;\n", 1, "mail: expected a group { ... }",
               "mail not a group");
    load_fails(MAIL_OPEN "};\n", 1,
               "servers: missing, the mail group needs at least one server",
               "missing servers");
    load_fails(MAIL_OPEN "    servers = ();\n};\n", 3,
               "servers: expected a list of groups ( { ... }, ... )",
               "empty servers");
    load_fails(MAIL_OPEN "    servers = ( \"143\" );\n};\n", 3,
               "servers: expected a list of groups ( { ... }, ... )",
               "servers entry not a group");

    /* scope */
    load_fails(MAIL_OPEN "    listen = \"143\";\n    servers = ( { listen = "
               "\"143\"; } );\n};\n", 3,
               "listen: only allowed in a servers entry", "listen in mail");
    load_fails(MAIL_OPEN "    protocol = \"imap\";\n    servers = ( { listen "
               "= \"143\"; } );\n};\n", 3,
               "protocol: only allowed in a servers entry",
               "protocol in mail");
    load_fails("timeout = \"5s\";\n" MAIL_OPEN "    servers = ( { listen = "
               "\"143\"; } );\n};\n", 1, "timeout: not allowed at the top "
               "level, only in mail or a servers entry", "timeout at the top");
    load_fails(MAIL_OPEN "    servers = ( { listen = \"143\";\n"
               "        daemon = false; } );\n};\n", 4,
               "daemon: only allowed at the top level", "daemon in a server");
    load_fails(MAIL_OPEN "    worker_threads = 3;\n    servers = ( { listen "
               "= \"143\"; } );\n};\n", 3,
               "worker_threads: only allowed at the top level",
               "worker_threads in mail");
    load_fails("servers = ();\n" MAIL_OPEN "    servers = ( { listen = "
               "\"143\"; } );\n};\n", 1,
               "servers: only allowed in the mail group", "servers at top");
    load_fails(MAIL_OPEN "    servers = ( { listen = \"143\";\n"
               "        servers = (); } );\n};\n", 4,
               "servers: only allowed in the mail group",
               "servers in a server");
    load_fails(MAIL_OPEN "    mail = {};\n    servers = ( { listen = "
               "\"143\"; } );\n};\n", 3,
               "mail: only allowed at the top level", "mail in mail");

    /* required values and rules between settings */
    load_fails(MAIL_OPEN "    servers = (\n        { protocol = \"imap\"; }"
               "\n    );\n};\n", 4, "listen: missing, every server needs one",
               "missing listen");
    load_fails(MAIL_OPEN "    servers = (\n        { listen = "
               "\"127.0.0.1:1143\"; }\n    );\n};\n", 4,
               "protocol: missing, and port 1143 is not a standard IMAP, "
               "POP3 or SMTP port", "no protocol for a non-standard port");
    load_fails(MAIL_OPEN "    servers = (\n        { listen = "
               "\"unix:/tmp/x.sock\"; }\n    );\n};\n", 4,
               "protocol: missing, and a UNIX socket has no port to tell "
               "it by", "no protocol for a UNIX socket");
    load_fails(MAIL_OPEN "    servers = (\n        { listen = [\"143\", "
               "\"110\"]; }\n    );\n};\n", 4,
               "protocol: missing, and the ports are of different protocols",
               "ports of different protocols");
    load_fails("mail = {\n    servers = (\n        { listen = \"143\"; }\n"
               "    );\n};\n", 3,
               "auth_http: missing, a server needs auth_http or auth_file",
               "no auth service");
    load_fails(MAIL_OPEN "    auth_file = \"users\";\n    servers = ( { "
               "listen = \"143\"; } );\n};\n", 3,
               "auth_file: auth_http is set too; a server uses exactly one "
               "of auth_http and auth_file", "auth_http and auth_file in mail");
    load_fails("mail = {\n    servers = ( { listen = \"143\";\n"
               "        auth_http = \"127.0.0.1\";\n"
               "        auth_file = \"users\"; } );\n};\n", 4,
               "auth_file: auth_http is set too; a server uses exactly one "
               "of auth_http and auth_file",
               "auth_http and auth_file in a server");
    load_fails(MAIL_OPEN "    servers = (\n        { listen = \"143\"; "
               "starttls = \"on\"; }\n    );\n};\n", 4,
               "ssl_certificate: missing, the server uses TLS",
               "starttls without a certificate");
    load_fails(MAIL_OPEN "    servers = (\n        { listen = \"993 ssl\"; }"
               "\n    );\n};\n", 4,
               "ssl_certificate: missing, the server uses TLS",
               "listen ssl without a certificate");
    load_fails(MAIL_OPEN "    ssl_certificate = [\"cert.pem\", \"cert.pem\"];"
               "\n    ssl_certificate_key = \"key.pem\";\n"
               "    servers = ( { listen = \"993\"; ssl = true; } );\n};\n", 4,
               "ssl_certificate_key: 1 key(s) for 2 certificate(s)",
               "keys and certificates do not pair");
    load_fails(MAIL_OPEN "    ssl = true;\n    servers = ( { listen = "
               "\"143\";\n        starttls = \"on\"" TLSFILES "; } );\n};\n",
               5, "starttls: cannot be used with \"ssl\" (use \"listen ... "
               "ssl\" for the implicit-TLS port)", "ssl with starttls");
    load_fails(MAIL_OPEN "    smtp_greeting_delay = \"1m\";\n"
               "    servers = ( { listen = \"25\"; } );\n};\n", 3,
               "smtp_greeting_delay: must be shorter than timeout, whose "
               "time it uses", "greeting delay as long as timeout");
    load_fails(MAIL_OPEN "    servers = ( { listen = \"25\";\n"
               "        timeout = \"2s\"; smtp_greeting_delay = \"3s\"; } );\n"
               "};\n", 4, "smtp_greeting_delay: must be shorter than timeout, "
               "whose time it uses", "greeting delay longer than timeout");
    load_fails(MAIL_OPEN "    ssl_protocols = [\"SSLv2\", \"SSLv3\"];\n"
               "    servers = ( { listen = \"143\"; } );\n};\n", 3,
               "ssl_protocols: no supported protocol left",
               "only SSL protocols");
    load_fails(MAIL_OPEN "    ssl_session_cache = \"off builtin\";\n"
               "    servers = ( { listen = \"143\"; } );\n};\n", 3,
               "ssl_session_cache: \"off\" and \"none\" must stand alone",
               "off with builtin");
    load_fails(MAIL_OPEN "    ssl_session_cache = [\"builtin\", "
               "\"builtin:10\"];\n"
               "    servers = ( { listen = \"143\"; } );\n};\n", 3,
               "ssl_session_cache: builtin given twice", "builtin twice");
    load_fails(MAIL_OPEN "    auth_http_header = ( [\"X-A\", \"a\\nb\"] );\n"
               "    servers = ( { listen = \"143\"; } );\n};\n", 3,
               "auth_http_header: CR or LF in the value of header \"X-A\"",
               "LF in a header value");
    load_fails(MAIL_OPEN "    auth_http_header = ( [\"X-A\"] );\n"
               "    servers = ( { listen = \"143\"; } );\n};\n", 3,
               "auth_http_header: expected a list of [\"Name\", \"value\"] "
               "pairs", "a header without a value");
    load_fails(MAIL_OPEN "    auth_http_header = ( [\"X:A\", \"v\"] );\n"
               "    servers = ( { listen = \"143\"; } );\n};\n", 3,
               "auth_http_header: invalid header name \"X:A\"",
               "a colon in a header name");

    /* 0 would fail every login at once (NGINX too: its timer fires at
     * once); the least is 1ms */
    load_fails(MAIL_OPEN "    auth_http_timeout = 0;\n"
               "    servers = ( { listen = \"143\"; } );\n};\n", 3,
               "auth_http_timeout: time out of range: the least is \"1ms\"",
               "auth_http_timeout 0");
    load_fails(MAIL_OPEN "    resolver_timeout = \"0s\";\n"
               "    servers = ( { listen = \"143\"; } );\n};\n", 3,
               "resolver_timeout: time out of range: the least is \"1ms\"",
               "resolver_timeout 0");
    c = load_ok(MAIL_OPEN "    auth_http_timeout = 1;\n"
                "    resolver_timeout = \"1ms\";\n"
                "    servers = ( { listen = \"143\"; } );\n};\n",
                "timeouts of 1ms");
    conf_unref(c);

    /* the auth_http host is looked up at load: a name that does not
     * resolve is the file's error, not every login's */
    c = load_text("mail = {\n    servers = ( { listen = \"143\";\n"
                  "        auth_http = \"http://no-such-host.invalid/a\"; }"
                  " );\n};\n", err, sizeof(err));
    ok(c == NULL, "an auth_http host that does not resolve fails the load");
    snprintf(want, sizeof(want), "%s:3: auth_http: host "
             "\"no-such-host.invalid\" not found: ", path_of("t.conf"));
    ok(strncmp(err, want, strlen(want)) == 0,
       "unresolvable auth_http message \"%s\"", err);
    conf_unref(c);

    /* a failing load-time hook names the setting */
    c = load_text("mail = {\n    servers = ( { listen = \"143\";\n"
                  "        auth_file = \"nosuchfile\"; } );\n};\n",
                  err, sizeof(err));
    ok(c == NULL, "an unreadable auth_file fails the load");
    snprintf(want, sizeof(want), "%s:3: auth_file: ", path_of("t.conf"));
    ok(strncmp(err, want, strlen(want)) == 0,
       "auth_file hook message \"%s\"", err);
    c = load_text(MAIL_OPEN "    servers = ( { listen = \"993 ssl\";\n"
                  "        ssl_certificate = \"nocert.pem\";\n"
                  "        ssl_certificate_key = \"key.pem\"; } );\n};\n",
                  err, sizeof(err));
    ok(c == NULL, "a missing certificate fails the load");
    snprintf(want, sizeof(want), "%s:4: ssl_certificate: %s: cannot open",
             path_of("t.conf"), path_of("nocert.pem"));
    ok(strncmp(err, want, strlen(want)) == 0,
       "TLS hook message names ssl_certificate and its line \"%s\"", err);
    /* each TLS file's failure is put at the line of its setting, in the
     * servers entry or in mail */
    c = load_text(MAIL_OPEN "    ssl_certificate = \"cert.pem\";\n"
                  "    ssl_certificate_key = \"cert.pem\";\n"
                  "    servers = ( { listen = \"993 ssl\"; } );\n};\n",
                  err, sizeof(err));
    ok(c == NULL, "a certificate given as the key fails the load");
    snprintf(want, sizeof(want), "%s:4: ssl_certificate_key: %s: cannot "
             "load the key", path_of("t.conf"), path_of("cert.pem"));
    ok(strncmp(err, want, strlen(want)) == 0,
       "the key's failure names ssl_certificate_key in mail \"%s\"", err);
    c = load_text(MAIL_OPEN "    servers = ( { listen = \"993 ssl\"" TLSFILES
                  ";\n        ssl_dhparam = \"nodh.pem\"; } );\n};\n",
                  err, sizeof(err));
    ok(c == NULL, "a missing ssl_dhparam fails the load");
    snprintf(want, sizeof(want), "%s:4: ssl_dhparam: %s: cannot open",
             path_of("t.conf"), path_of("nodh.pem"));
    ok(strncmp(err, want, strlen(want)) == 0,
       "ssl_dhparam's failure names it \"%s\"", err);
    load_fails(MAIL_OPEN "    servers = ( { listen = \"993 ssl\"" TLSFILES
               ";\n\n        ssl_ciphers = \"NO-SUCH-CIPHER\"; } );\n};\n", 5,
               "ssl_ciphers: \"NO-SUCH-CIPHER\" cannot be translated to "
               "GnuTLS (use ssl_priority)", "ssl_ciphers at its line");
    load_fails(MAIL_OPEN "    servers = ( { listen = \"993 ssl\";\n"
               "        ssl_certificate = \"cert.pem\";\n"
               "        ssl_certificate_key = \"pkcs11:token=t;object=k\"; } "
               ");\n};\n", 5, "ssl_certificate_key: \"pkcs11:token=t;"
               "object=k\": PKCS #11 URLs are not supported, only files",
               "a PKCS #11 URL");
}

/* ---- inheritance, defaults, computed values ------------------------ */

/* An auth_http host name is looked up once per load, however many
 * servers inherit or repeat it; another name is looked up for itself. */
static void
test_auth_http_lookups(void)
{
    struct conf *c;
    int before = localhost_lookups;

    c = load_ok("mail = {\n"
                "    auth_http = \"http://localhost:9000/auth\";\n"
                "    servers = (\n"
                "        { listen = \"143\"; },\n"
                "        { listen = \"110\"; },\n"
                "        { listen = \"25\";\n"
                "          auth_http = \"http://localhost:9000/smtp\"; }\n"
                "    );\n"
                "};\n", "auth_http on localhost for three servers");
    is_int(localhost_lookups - before, 1, "localhost looked up once");
    if (c != NULL) {
        ok(c->nservers == 3 && c->servers[0].auth_http->naddrs > 0
           && c->servers[2].auth_http->naddrs
              == c->servers[0].auth_http->naddrs
           && memcmp(c->servers[2].auth_http->addrs,
                     c->servers[0].auth_http->addrs,
                     c->servers[0].auth_http->naddrs
                     * sizeof(*c->servers[0].auth_http->addrs)) == 0,
           "every server has the addresses");
        conf_unref(c);
    }
    before = localhost_lookups;
    c = load_ok("mail = {\n"
                "    auth_http = \"http://localhost:9000/auth\";\n"
                "    servers = ( { listen = \"143\"; } );\n"
                "};\n", "auth_http on localhost, loaded again");
    is_int(localhost_lookups - before, 1, "a new load looks it up again");
    conf_unref(c);
}

/* Tests of inheritance. */
static void
test_inheritance(void)
{
    char host[256], buf[64];
    struct conf *c;
    const struct server_conf *s;

    c = load_ok("worker_threads = 40;\nerror_log = \"stderr\";\n"
                "mail = {\n"
                "    auth_http = \"http://127.0.0.1:9000/auth\";\n"
                "    timeout = \"10s\";\n"
                "    auth_http_header = ( [\"X-A\", \"1\"], [\"X-B\", \"two\"]"
                " );\n"
                "    imap_capabilities = \"IMAP4rev1\";\n"
                "    xclient = \"off\";\n"
                "    ssl_protocols = [\"SSLv3\", \"TLSv1.2\"];\n"
                "    ssl_dhparam = \"dh.pem\";\n"
                "    servers = (\n"
                "        { listen = \"143\"; },\n"
                "        { listen = \"110\"; timeout = 20000; xclient = true;\n"
                "          auth_file = \"users\"; },\n"
                "        { listen = \"587\"; preauth_per_client = 3;\n"
                "          error_log = \"stderr debug\";\n"
                "          proxy_buffer = \"64k\"; }\n"
                "    );\n"
                "};\n", "inheritance");
    if (c == NULL) {
        return;
    }
    is_int(c->nservers, 3, "three servers");
    s = &c->servers[0];
    is_int(s->timeout, 10000, "mail's timeout inherited");
    is_int(c->servers[1].timeout, 20000, "server's timeout wins");
    is_int(c->servers[2].timeout, 10000, "mail's timeout in server 3");
    is_int(s->auth_http_timeout, 60000, "default auth_http_timeout");
    is_int(s->max_errors, 5, "default max_errors");
    is_int(s->proxy_timeout, 86400000, "default proxy_timeout 24h");
    is_int(s->resolver_timeout, 30000, "default resolver_timeout");
    is_int(s->ssl_session_timeout, 300, "default ssl_session_timeout 5m");
    is_int(s->ssl_verify_depth, 1, "default ssl_verify_depth");
    is_int(s->starttls, STARTTLS_OFF, "default starttls off");
    is_int(s->resolver.enabled, 0, "default resolver off");
    is_int(s->imap_auth, AUTH_M_PLAIN, "default imap_auth");
    is_int(s->smtp_auth, AUTH_M_PLAIN | AUTH_M_LOGIN, "default smtp_auth");
    is_str(s->ssl_ciphers, "HIGH:!aNULL:!MD5", "default ssl_ciphers");
    is_str(s->ssl_ecdh_curve, "auto", "default ssl_ecdh_curve");
    is_int(s->ssl_session_cache.n, 1, "default ssl_session_cache");
    is_str(s->ssl_session_cache.v[0], "none", "default cache none");
    ok(s->ssl_session_tickets && s->proxy, "default true flags");
    is_int(s->pop3_capabilities.n, 3, "default pop3_capabilities");
    is_int(s->imap_capabilities.n, 1, "a single string is a list of one");
    is_str(s->imap_capabilities.v[0], "IMAP4rev1", "mail's capabilities");
    is_int(s->xclient, 0, "\"off\" is false");
    is_int(c->servers[1].xclient, 1, "server's xclient wins");
    is_int(s->ssl_protocols.n, 1, "SSLv3 is left out");
    is_str(s->ssl_protocols.v[0], "TLSv1.2", "TLSv1.2 kept");
    is_str(s->ssl_dhparam, path_of("dh.pem"), "relative path from the "
           "file's directory");
    is_str(s->auth_http_header_block, "X-A: 1\r\nX-B: two\r\n",
           "auth_http_header block");

    is_int(s->protocol, PROTO_IMAP, "143: imap");
    is_int(c->servers[1].protocol, PROTO_POP3, "110: pop3");
    is_int(c->servers[2].protocol, PROTO_SMTP, "587: smtp");

    gethostname(host, sizeof(host));
    host[sizeof(host) - 1] = '\0';
    is_str(s->server_name, host, "server_name defaults to the host name");
    is_int(s->imap_client_buffer, sysconf(_SC_PAGESIZE), "page-size buffer");
    is_int(s->smtp_client_buffer, sysconf(_SC_PAGESIZE), "page-size buffer");
    is_int(s->proxy_buffer, sysconf(_SC_PAGESIZE), "page-size proxy_buffer");
    is_int(c->servers[2].proxy_buffer, 65536, "proxy_buffer 64k");
    is_int(s->preauth_per_client, 10, "preauth_per_client 40/4");
    is_int(c->servers[2].preauth_per_client, 3, "preauth_per_client set");

    ok(s->auth_http != NULL && s->auth_file == NULL, "server 1: auth_http");
    ok(c->servers[1].auth_http == NULL, "server 2: auth_file replaces "
       "mail's auth_http");
    is_str(c->servers[1].auth_file, path_of("users"), "server 2: auth_file");
    ok(c->servers[1].auth_file_data != NULL, "auth_file loaded");
    is_str(s->auth_http->host, "127.0.0.1", "auth_http host");
    is_int(s->auth_http->port, 9000, "auth_http port");
    /* looked up at load, with its port: a login does no lookup */
    ok(s->auth_http->naddrs == 1
       && s->auth_http->addrs[0].ss_family == AF_INET
       && ((struct sockaddr_in *)&s->auth_http->addrs[0])->sin_port
          == htons(9000)
       && ((struct sockaddr_in *)&s->auth_http->addrs[0])->sin_addr.s_addr
          == htonl(INADDR_LOOPBACK), "auth_http address from load");

    ok(c->error_log != NULL, "top log");
    ok(s->error_log == c->error_log, "server without error_log: top's log");
    ok(c->servers[2].error_log != NULL
       && c->servers[2].error_log != c->error_log, "server's own log");
    is_int(c->nlogs, 2, "two logs owned");
    is_str(s->error_log_spec.v[0], "stderr", "inherited error_log spec");

    is_int(c->worker_threads, 40, "worker_threads");
    is_int(c->relay_threads, 1, "default relay_threads");
    is_int(c->worker_connections, 1024, "default worker_connections");
    is_int(c->worker_rlimit_nofile, -1, "worker_rlimit_nofile unset");
    is_int(c->shutdown_timeout, -1, "shutdown_timeout unset");
    is_int(c->daemon, 1, "daemon defaults to true");
    snprintf(buf, sizeof(buf), "%s", c->dir);
    is_str(buf, dir, "c->dir");

    ok(conf_ref(c) == c, "conf_ref returns c");
    is_int(atomic_load(&c->refs), 2, "two references");
    conf_unref(c);
    is_int(atomic_load(&c->refs), 1, "one reference");
    conf_unref(c);

    /* mail's error_log: one log shared by every server, owned once */
    c = load_ok("error_log = \"stderr\";\nworker_threads = 2;\n"
                "mail = {\n    auth_http = \"127.0.0.1\";\n"
                "    error_log = [\"stderr warn\", \"log/mail.log\"];\n"
                "    servers = ( { listen = \"143\"; }, { listen = \"993\"; "
                "} );\n};\n", "mail's error_log");
    if (c != NULL) {
        ok(c->servers[0].error_log == c->servers[1].error_log,
           "servers share mail's log");
        ok(c->servers[0].error_log != c->error_log, "mail's log is not top's");
        is_int(c->nlogs, 2, "top and mail logs owned");
        is_int(c->servers[0].preauth_per_client, 1, "preauth at least 1");
        is_str(c->servers[1].error_log_spec.v[1], path_of("log/mail.log"),
               "relative log file from the file's directory");
        conf_unref(c);
    }

    /* ssl = true makes every listen TLS; starttls with a boolean */
    write_file("tls.conf", MAIL_OPEN
               "    ssl_certificate = \"cert.pem\";\n"
               "    ssl_certificate_key = \"key.pem\";\n"
               "    servers = ( { listen = [\"993\", \"127.0.0.1:1993\"]; "
               "ssl = \"on\"; protocol = \"imap\"; },\n"
               "                { listen = \"110\"; starttls = true; } );\n"
               "};\n");
    {
        char err[1024];

        c = conf_load(path_of("tls.conf"), err, sizeof(err));
        if (!ok(c != NULL, "TLS servers load")) {
            printf("#   %s\n", err);
        } else {
            ok(c->servers[0].listen[0].ssl && c->servers[0].listen[1].ssl,
               "ssl = on: every listen is TLS");
            ok(c->servers[0].tls_data != NULL, "TLS built for server 1");
            is_int(c->servers[1].starttls, STARTTLS_ON, "starttls = true");
            ok(c->servers[1].tls_data != NULL, "TLS built for server 2");
            conf_unref(c);
        }
    }
}

/* Dump c into dir/name. */
static void
dump_to(const struct conf *c, const char *name)
{
    FILE *f = fopen(path_of(name), "w");

    if (f != NULL) {
        conf_dump(c, f);
        fclose(f);
    }
}

/* The dump without comment lines (they name the file). */
static char *
slurp_nocomments(const char *name)
{
    FILE *f = fopen(path_of(name), "r");
    char line[1024], *out = calloc(1, 1 << 16);
    size_t len = 0;

    while (f != NULL && out != NULL && fgets(line, sizeof(line), f)) {
        char *hash = strstr(line, "# ");

        if (hash != NULL && strchr(hash, '"') == NULL) {
            strcpy(hash, "\n");
        }
        if (len + strlen(line) + 1 < (1 << 16)) {
            strcpy(out + len, line);
            len += strlen(line);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return out;
}

/* Tests of dump. */
static void
test_dump(void)
{
    char err[1024];
    struct conf *c, *d;
    char *a, *b;

    c = load_ok("daemon = \"off\";\nuser = \"mail nogroup\";\n"
                "worker_rlimit_nofile = 8192;\nshutdown_timeout = 90000;\n"
                "relay_threads = \"auto\";\n"
                "mail = {\n"
                "    auth_http = \"http://[::1]:9000/auth\";\n"
                "    auth_http_header = ( [\"X-Q\", \"a \\\"quoted\\\" \\\\ "
                "value\"] );\n"
                "    access = [\"deny 10.1.2.3/8\", \"allow ::1\", "
                "\"allow unix:\", \"deny all\"];\n"
                "    set_real_ip_from = \"192.0.2.0/24\";\n"
                "    resolver = \"127.0.0.1:5353 valid=1m ipv6=off\";\n"
                "    smtp_auth = [\"none\", \"cram-md5\"];\n"
                "    ssl_session_cache = \"builtin:100 shared:M:1m\";\n"
                "    ssl_session_timeout = \"1h\";\n"
                "    smtp_greeting_delay = 1500;\n"
                "    servers = ( { listen = [\"127.0.0.1:1025 backlog=5\", "
                "\"unix:/tmp/pst.sock\"]; protocol = \"smtp\";\n"
                "                  smtp_client_buffer = 1000; } );\n"
                "};\n", "dump source");
    if (c == NULL) {
        return;
    }
    dump_to(c, "dump1.conf");
    d = conf_load(path_of("dump1.conf"), err, sizeof(err));
    if (!ok(d != NULL, "the -T output loads")) {
        printf("#   %s\n", err);
        conf_unref(c);
        return;
    }
    dump_to(d, "dump2.conf");
    a = slurp_nocomments("dump1.conf");
    b = slurp_nocomments("dump2.conf");
    ok(a != NULL && b != NULL && strcmp(a, b) == 0,
       "the -T output of the -T output is the same");
    ok(a != NULL && strstr(a, "access = [ \"deny 10.0.0.0/8\", \"allow ::1\","
                           " \"allow unix:\", \"deny all\" ];") != NULL,
       "access dumped");
    ok(a != NULL && strstr(a, "ssl_session_timeout = \"1h\";") != NULL,
       "seconds time dumped");
    ok(a != NULL && strstr(a, "smtp_greeting_delay = \"1s500ms\";") != NULL,
       "ms time dumped");
    ok(a != NULL && strstr(a, "smtp_client_buffer = 1000;") != NULL,
       "size dumped");
    ok(a != NULL && strstr(a, " proxy = ") == NULL,
       "proxy (compatibility only) dumped as a comment, not a setting");
    ok(a != NULL && strstr(a, "user = \"mail nogroup\";") != NULL,
       "user dumped");
    ok(a != NULL && strstr(a, "relay_threads = \"auto\";") != NULL,
       "relay_threads \"auto\" dumped");
    is_int(d->relay_threads, 0, "relay_threads \"auto\" loads back");
    ok(a != NULL && strstr(a, "resolver = \"127.0.0.1:5353 valid=60s ipv4=on "
                           "ipv6=off\";") != NULL, "resolver dumped");
    is_str(d->servers[0].auth_http_header.value[0], "a \"quoted\" \\ value",
           "escaped string survives the round trip");
    is_int(d->shutdown_timeout, 90000, "shutdown_timeout round trip");
    is_int(d->worker_rlimit_nofile, 8192, "worker_rlimit_nofile round trip");
    is_int(d->daemon, 0, "daemon round trip");
    is_str(d->group, "nogroup", "group round trip");
    is_int(d->servers[0].smtp_auth, AUTH_M_NONE | AUTH_M_CRAM_MD5,
           "smtp_auth round trip");
    is_int(d->servers[0].nlisten, 2, "listen round trip");
    is_int(d->servers[0].listen[0].backlog, 5, "listen options round trip");
    free(a);
    free(b);
    conf_unref(d);
    conf_unref(c);
}

/* ---- listen addresses across servers ------------------------------ */

/* A document with two servers, their listen values on lines 5 and 6. */
static void
two_servers(char *buf, size_t len, const char *l1, const char *l2)
{
    snprintf(buf, len,
             "# listen test\n"
             "mail = {\n"
             "    auth_http = \"http://127.0.0.1:9000/auth\";\n"
             "    servers = (\n"
             "        { protocol = \"imap\"; listen = %s; },\n"
             "        { protocol = \"pop3\"; listen = %s; }\n"
             "    );\n"
             "};\n", l1, l2);
}

/* Duplicates, wildcard sharing and the pairs Linux refuses, all found by
 * conf_load (so `postern -t` reports them). */
static void
test_listen_checks(void)
{
    char text[2048], want[1024];
    struct conf *c;

    two_servers(text, sizeof(text), "\"127.0.0.1:1143\"",
                "\"127.0.0.1:1143 proxy_protocol\"");
    snprintf(want, sizeof(want), "listen: duplicate address 127.0.0.1:1143 "
             "(also at %s:5)", path_of("t.conf"));
    load_fails(text, 6, want, "one address in two servers");

    two_servers(text, sizeof(text), "[\"1143\", \"*:1143\"]", "\"1110\"");
    snprintf(want, sizeof(want), "listen: duplicate address 0.0.0.0:1143 "
             "(also at %s:5)", path_of("t.conf"));
    load_fails(text, 5, want, "143 and *:143 in one server");

    two_servers(text, sizeof(text), "\"[::1]:1143\"",
                "[\"1110\", \"[0::1]:1143\"]");
    snprintf(want, sizeof(want), "listen: duplicate address [::1]:1143 "
             "(also at %s:5)", path_of("t.conf"));
    load_fails(text, 6, want, "an IPv6 address written twice");

    /* without bind: served by the wildcard's socket */
    two_servers(text, sizeof(text), "[\"1143\", \"[::]:1143\"]",
                "[\"127.0.0.1:1143 ssl\", \"[::1]:1143\", "
                "\"127.0.0.1:1110\"]"
                "; ssl_certificate = \"cert.pem\"; "
                "ssl_certificate_key = \"key.pem\"");
    if ((c = load_ok(text, "wildcards and addresses of one port")) != NULL) {
        const struct server_conf *w = &c->servers[0], *a = &c->servers[1];

        ok(w->listen[0].via == NULL && w->listen[1].via == NULL,
           "the wildcards have sockets of their own");
        ok(a->listen[0].via == &w->listen[0],
           "127.0.0.1:1143 is served by *:1143");
        ok(a->listen[1].via == &w->listen[1],
           "[::1]:1143 is served by [::]:1143");
        ok(a->listen[2].via == NULL, "127.0.0.1:1110 has its own");
        conf_unref(c);
    }

    two_servers(text, sizeof(text), "\"[::]:1143\"", "\"127.0.0.1:1143\"");
    if ((c = load_ok(text, "an IPv4 address and an IPv6 wildcard")) != NULL) {
        ok(c->servers[1].listen[0].via == NULL,
           "another family's wildcard does not serve it");
        conf_unref(c);
    }

    two_servers(text, sizeof(text), "\"1143\"", "\"127.0.0.1:1143 bind\"");
    snprintf(want, sizeof(want), "listen: 127.0.0.1:1143 needs a socket of "
             "its own (bind, backlog, rcvbuf, sndbuf, ipv6only or "
             "so_keepalive), which the system does not allow beside the "
             "wildcard 0.0.0.0:1143 of %s:5; leave those out (the wildcard's "
             "socket then takes its connections) or listen on addresses "
             "instead of the wildcard", path_of("t.conf"));
    load_fails(text, 6, want, "bind beside the wildcard");

    two_servers(text, sizeof(text), "\"127.0.0.1:1143 backlog=8\"",
                "\"*:1143\"");
    snprintf(want, sizeof(want), "listen: 127.0.0.1:1143 needs a socket of "
             "its own (bind, backlog, rcvbuf, sndbuf, ipv6only or "
             "so_keepalive), which the system does not allow beside the "
             "wildcard 0.0.0.0:1143 of %s:6; leave those out (the wildcard's "
             "socket then takes its connections) or listen on addresses "
             "instead of the wildcard", path_of("t.conf"));
    load_fails(text, 5, want, "backlog (implied bind) before the wildcard");

    two_servers(text, sizeof(text), "\"[::]:1143 ipv6only=off\"",
                "\"127.0.0.1:1143\"");
    snprintf(want, sizeof(want), "listen: [::]:1143 with ipv6only=off takes "
             "IPv4 connections too, which the system does not allow beside "
             "127.0.0.1:1143 of %s:6; leave ipv6only=off out (on is the "
             "default)", path_of("t.conf"));
    load_fails(text, 5, want, "a dual-stack wildcard beside IPv4");

    two_servers(text, sizeof(text), "\"[::]:1143 ipv6only=off\"",
                "\"[::1]:1143\"");
    if ((c = load_ok(text, "a dual-stack wildcard serves IPv6 addresses"))
        != NULL) {
        ok(c->servers[1].listen[0].via == &c->servers[0].listen[0],
           "[::1]:1143 served by [::]:1143 ipv6only=off");
        conf_unref(c);
    }

    two_servers(text, sizeof(text), "\"127.0.0.1:1143 bind\"",
                "\"127.0.0.2:1143 so_keepalive=on\"");
    c = load_ok(text, "addresses with bind and no wildcard");
    conf_unref(c);
}

/* Run every group of tests and print the TAP plan. */
int
main(void)
{
    char cmd[600];

    snprintf(dir, sizeof(dir), "/tmp/postern-test-conf-%ld", (long)getpid());
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s/log'", dir, dir);
    if (system(cmd) != 0) {
        printf("Bail out! cannot create %s\n", dir);
        return 1;
    }
    write_file("cert.pem", cert_pem);
    write_file("key.pem", key_pem);
    write_file("users", "# test users\n"
               "alice {PLAIN}secret 127.0.0.1:143\n");

    test_every_setting();
    test_errors();
    test_inheritance();
    test_auth_http_lookups();
    test_dump();
    test_listen_checks();

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", dir);
    }
    return tap_done();
}
