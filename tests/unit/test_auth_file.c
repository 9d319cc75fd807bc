/*
 * test_auth_file.c - the built-in user file: parsing (good files and every
 * kind of malformed line, with the exact messages), loading from disk, and
 * queries with real crypt(3) hashes (yescrypt, SHA-512, bcrypt), {PLAIN},
 * CRAM-MD5 and APOP (RFC test vectors), EXTERNAL and SMTP without AUTH,
 * and the crypt work each answer costs (counted through crypt_rn below).
 */
#include <crypt.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "auth_file.h"
#include "conf.h"
#include "str.h"
#include "tap.h"

/* Calls of crypt_rn(): this definition stands in front of libcrypt's for
 * the whole program (auth_file.o included) and passes each call on. */
static int crypt_calls;

char *
crypt_rn(const char *phrase, const char *setting, void *data, int size)
{
    typedef char *(*crypt_fn)(const char *, const char *, void *, int);
    static crypt_fn real;

    if (real == NULL) {
        *(void **)&real = dlsym(RTLD_NEXT, "crypt_rn");
        if (real == NULL) {
            return NULL;
        }
    }
    crypt_calls++;
    return real(phrase, setting, data, size);
}

/* A crypt(3) hash of pw with a fresh salt for the given prefix. */
static char *
make_hash(const char *prefix, unsigned long cost, const char *pw)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    char *out = NULL;
    const char *h;

    if (cd == NULL) {
        return NULL;
    }
    if (crypt_gensalt_rn(prefix, cost, NULL, 0, setting, sizeof(setting))
        != NULL) {
        h = crypt_rn(pw, setting, cd, (int)sizeof(*cd));
        if (h != NULL && h[0] != '*') {
            out = strdup(h);
        }
    }
    free(cd);
    return out;
}

/* Parse text; returns the table or NULL with err filled. */
static void *
parse(const char *text, char *err, size_t errlen)
{
    err[0] = '\0';
    return auth_file_parse("users", (const unsigned char *)text,
                           strlen(text), err, errlen);
}

/* The error message a malformed text produces. */
static const char *
parse_err(const char *text)
{
    static char err[512];
    void *t = parse(text, err, sizeof(err));

    if (t != NULL) {
        auth_file_free(t);
        return "(parsed)";
    }
    return err;
}

static struct server_conf sc;

/* One query with method m for user / pass (and salt). */
static void
query(struct auth_result *r, enum auth_method m, const char *user,
      const char *pass, size_t passlen, const char *salt)
{
    struct auth_request rq;

    memset(&rq, 0, sizeof(rq));
    rq.method = m;
    rq.user.data = (unsigned char *)user;
    rq.user.len = strlen(user);
    rq.pass.data = (unsigned char *)pass;
    rq.pass.len = passlen;
    if (salt != NULL) {
        rq.salt.data = (unsigned char *)salt;
        rq.salt.len = strlen(salt);
    }
    rq.protocol = sc.protocol;
    rq.attempt = 1;
    rq.client_ip = "192.0.2.1";
    auth_query(&sc, &rq, r);
}

/* Shorthand: status of a plain login. */
static int
login(const char *user, const char *pass)
{
    struct auth_result r;
    int st;

    query(&r, AUTH_METHOD_PLAIN, user, pass, strlen(pass), NULL);
    st = r.status;
    auth_result_free(&r);
    return st;
}

/* crypt(3) calls one plain login costs. */
static int
crypt_cost(const char *user, const char *pass)
{
    int before = crypt_calls;

    login(user, pass);
    return crypt_calls - before;
}

/* A result's user as a C string ("" when empty). */
static const char *
user_of(const struct auth_result *r)
{
    return r->user.len ? (const char *)r->user.data : "";
}

int
main(void)
{
    char *y, *sha, *bf, *text, err[512], path[] = "/tmp/test_auth_fileXXXXXX";
    struct auth_result r;
    struct auth_request rq;
    void *t;
    FILE *f;
    int fd;

    y = make_hash("$y$", 0, "yes-secret");
    sha = make_hash("$6$", 5000, "sha-secret");
    bf = make_hash("$2b$", 4, "bf-secret");
    ok(y != NULL && strncmp(y, "$y$", 3) == 0, "yescrypt hash made");
    ok(sha != NULL && strncmp(sha, "$6$", 3) == 0, "SHA-512 hash made");
    ok(bf != NULL && strncmp(bf, "$2b$", 4) == 0, "bcrypt hash made");
    if (y == NULL || sha == NULL || bf == NULL) {
        return tap_done();
    }

    text = malloc(4096);
    snprintf(text, 4096,
             "# postern users\n"
             "\n"
             "   # indented comment\n"
             "alice %s 10.0.0.1\n"
             "bob\t%s\t10.0.0.2:1143 \t bob@backend\n"
             "carol %s mail.example.org:993\r\n"
             "tim {PLAIN}tanstaaftanstaaf [::1]:1110\n"
             "mrose {PLAIN}tanstaaf ::1\n"
             "*  {PLAIN}unused  127.0.0.1:2525 relay\n"
             "utf\xc3\xa9 {PLAIN}p\xc3\xa4ss 10.0.0.9",
             y, sha, bf);
    t = parse(text, err, sizeof(err));
    ok(t != NULL, "good file parses (%s)", err);
    is_int(auth_file_count(t), 7, "seven entries");
    sc.auth_file = "users";
    sc.auth_file_data = t;
    sc.protocol = PROTO_IMAP;

    /* plain logins */
    is_int(login("alice", "yes-secret"), AUTH_OK, "yescrypt: right password");
    is_int(login("alice", "yes-secreT"), AUTH_FAIL, "yescrypt: wrong password");
    is_int(login("bob", "sha-secret"), AUTH_OK, "SHA-512: right password");
    is_int(login("bob", "sha-secret "), AUTH_FAIL, "SHA-512: wrong password");
    is_int(login("carol", "bf-secret"), AUTH_OK, "bcrypt: right password");
    is_int(login("carol", ""), AUTH_FAIL, "bcrypt: empty password");
    is_int(login("tim", "tanstaaftanstaaf"), AUTH_OK, "{PLAIN}: right");
    is_int(login("tim", "tanstaaftanstaa"), AUTH_FAIL, "{PLAIN}: prefix");
    is_int(login("tim", "tanstaaftanstaaff"), AUTH_FAIL, "{PLAIN}: longer");
    is_int(login("Tim", "tanstaaftanstaaf"), AUTH_FAIL, "names are exact");
    is_int(login("utf\xc3\xa9", "p\xc3\xa4ss"), AUTH_OK, "8-bit name and "
           "secret");
    is_int(login("*", "unused"), AUTH_FAIL, "\"*\" is not a login");
    is_int(login("", "yes-secret"), AUTH_FAIL, "empty login");
    {
        static const char nul[] = "yes-secret\0junk";

        query(&r, AUTH_METHOD_PLAIN, "alice", nul, sizeof(nul) - 1, NULL);
        is_int(r.status, AUTH_FAIL, "a NUL cannot cut the password short");
        auth_result_free(&r);
    }

    /* the result */
    query(&r, AUTH_METHOD_PLAIN, "alice", "yes-secret", 10, NULL);
    is_int(r.status, AUTH_OK, "alice ok");
    is_str(r.server, "10.0.0.1", "server");
    is_int(r.port, 143, "IMAP default port");
    is_int(r.user.len, 0, "no backend user: login kept");
    is_int(r.pass.len, 0, "no password returned for plain");
    is_int(r.wait, -1, "no wait on success");
    auth_result_free(&r);
    ok(r.server == NULL && r.user.data == NULL && r.pass.data == NULL
       && r.message == NULL && r.log_reason == NULL, "free clears");

    query(&r, AUTH_METHOD_LOGIN, "bob", "sha-secret", 10, NULL);
    is_int(r.status, AUTH_OK, "LOGIN method checks the same");
    is_str(r.server, "10.0.0.2", "bob server");
    is_int(r.port, 1143, "explicit port");
    is_str(user_of(&r), "bob@backend", "backend user replaces the login");
    auth_result_free(&r);

    query(&r, AUTH_METHOD_PLAIN, "tim", "tanstaaftanstaaf", 16, NULL);
    is_str(r.server, "::1", "bracketed IPv6, brackets removed");
    is_int(r.port, 1110, "IPv6 port");
    auth_result_free(&r);

    sc.protocol = PROTO_POP3;
    query(&r, AUTH_METHOD_PLAIN, "mrose", "tanstaaf", 8, NULL);
    is_str(r.server, "::1", "bare IPv6");
    is_int(r.port, 110, "POP3 default port");
    auth_result_free(&r);
    sc.protocol = PROTO_SMTP;
    query(&r, AUTH_METHOD_PLAIN, "mrose", "tanstaaf", 8, NULL);
    is_int(r.port, 25, "SMTP default port");
    auth_result_free(&r);
    sc.protocol = PROTO_IMAP;

    /* failures look the same for unknown users and wrong passwords */
    query(&r, AUTH_METHOD_PLAIN, "alice", "nope", 4, NULL);
    is_int(r.status, AUTH_FAIL, "wrong password: FAIL");
    is_str(r.message, "Invalid login or password", "wrong password message");
    is_int(r.wait, 2, "wait 2 s before a retry");
    is_str(r.error_code, NULL, "no SMTP code: the session's default");
    auth_result_free(&r);
    query(&r, AUTH_METHOD_PLAIN, "nobody", "nope", 4, NULL);
    is_int(r.status, AUTH_FAIL, "unknown user: FAIL");
    is_str(r.message, "Invalid login or password", "same message");
    is_int(r.wait, 2, "same wait");
    auth_result_free(&r);
    /* ... and cost the same crypt work: one hash each, a listed {PLAIN}
     * user's on the dummy setting as an unknown user's */
    ok(crypt_calls > 0, "crypt calls are counted (%d so far)", crypt_calls);
    is_int(crypt_cost("nobody", "nope"), 1, "unknown user: one crypt");
    is_int(crypt_cost("alice", "nope"), 1, "hashed user: one crypt");
    is_int(crypt_cost("tim", "nope"), 1, "{PLAIN} user, wrong: one crypt");
    is_int(crypt_cost("tim", "tanstaaftanstaaf"), 1,
           "{PLAIN} user, right: one crypt");

    /* CRAM-MD5, RFC 2195's example */
    query(&r, AUTH_METHOD_CRAM_MD5, "tim", "b913a602c7eda7a495b4e6e7334d3890",
          32, "<1896.697170952@postoffice.reston.mci.net>");
    is_int(r.status, AUTH_OK, "CRAM-MD5: RFC 2195 example");
    is_str((const char *)r.pass.data, "tanstaaftanstaaf",
           "CRAM-MD5: the secret is returned for the backend login");
    auth_result_free(&r);
    query(&r, AUTH_METHOD_CRAM_MD5, "tim", "B913A602C7EDA7A495B4E6E7334D3890",
          32, "<1896.697170952@postoffice.reston.mci.net>\r\n");
    is_int(r.status, AUTH_OK, "CRAM-MD5: upper-case hex, salt with CRLF");
    auth_result_free(&r);
    query(&r, AUTH_METHOD_CRAM_MD5, "tim", "b913a602c7eda7a495b4e6e7334d3891",
          32, "<1896.697170952@postoffice.reston.mci.net>");
    is_int(r.status, AUTH_FAIL, "CRAM-MD5: wrong digest");
    auth_result_free(&r);
    query(&r, AUTH_METHOD_CRAM_MD5, "tim", "b913a602c7eda7a495b4e6e7334d389",
          31, "<1896.697170952@postoffice.reston.mci.net>");
    is_int(r.status, AUTH_FAIL, "CRAM-MD5: short digest");
    auth_result_free(&r);
    query(&r, AUTH_METHOD_CRAM_MD5, "alice", "b913a602c7eda7a495b4e6e7334d3890",
          32, "<1896.697170952@postoffice.reston.mci.net>");
    is_int(r.status, AUTH_FAIL, "CRAM-MD5: crypt-hashed user fails");
    ok(r.log_reason != NULL && strstr(r.log_reason, "{PLAIN}") != NULL,
       "CRAM-MD5: the log says why (%s)", r.log_reason ? r.log_reason : "");
    is_str(r.message, "Invalid login or password", "but the client does not");
    auth_result_free(&r);

    /* APOP, RFC 1939's example */
    query(&r, AUTH_METHOD_APOP, "mrose", "c4c9334bac560ecc979e58001b3e22fb",
          32, "<1896.697170952@dbc.mtview.ca.us>");
    is_int(r.status, AUTH_OK, "APOP: RFC 1939 example");
    is_str((const char *)r.pass.data, "tanstaaf", "APOP: secret returned");
    auth_result_free(&r);
    query(&r, AUTH_METHOD_APOP, "mrose", "c4c9334bac560ecc979e58001b3e22fb",
          32, "<1896.697170953@dbc.mtview.ca.us>");
    is_int(r.status, AUTH_FAIL, "APOP: other salt");
    auth_result_free(&r);
    query(&r, AUTH_METHOD_APOP, "ghost", "c4c9334bac560ecc979e58001b3e22fb",
          32, "<1896.697170952@dbc.mtview.ca.us>");
    is_int(r.status, AUTH_FAIL, "APOP: unknown user");
    auth_result_free(&r);

    /* EXTERNAL */
    memset(&rq, 0, sizeof(rq));
    rq.method = AUTH_METHOD_EXTERNAL;
    rq.protocol = PROTO_IMAP;
    rq.user = STR_LIT("tim");
    rq.ssl = 1;
    rq.ssl_verify = "SUCCESS";
    rq.ssl_subject = "CN=tim,O=Example,C=US";
    auth_query(&sc, &rq, &r);
    is_int(r.status, AUTH_OK, "EXTERNAL: verified certificate, known user");
    is_str((const char *)r.pass.data, "tanstaaftanstaaf",
           "EXTERNAL: {PLAIN} secret returned");
    auth_result_free(&r);
    rq.ssl_subject = "CN=other,O=Example,C=US";
    auth_query(&sc, &rq, &r);
    is_int(r.status, AUTH_FAIL, "EXTERNAL: certificate of another user");
    auth_result_free(&r);
    rq.ssl_subject = "CN=tim\\,x,O=Example";
    auth_query(&sc, &rq, &r);
    is_int(r.status, AUTH_FAIL, "EXTERNAL: escaped comma is part of the CN");
    auth_result_free(&r);
    rq.ssl_subject = "emailAddress=tim,CN=Tim Example";
    auth_query(&sc, &rq, &r);
    is_int(r.status, AUTH_OK, "EXTERNAL: emailAddress names the user");
    auth_result_free(&r);
    rq.ssl_subject = "CN=t\\69m,O=Example";
    auth_query(&sc, &rq, &r);
    is_int(r.status, AUTH_OK, "EXTERNAL: \\XX is the byte in hex (RFC 4514)");
    auth_result_free(&r);
    /* as GnuTLS's gnutls_x509_crt_get_dn3() writes that attribute */
    rq.ssl_subject = "CN=Tim Example,EMAIL=tim";
    auth_query(&sc, &rq, &r);
    is_int(r.status, AUTH_OK, "EXTERNAL: EMAIL (GnuTLS's name) names the user");
    auth_result_free(&r);
    rq.ssl_subject = "CN=tim,O=Example,C=US";
    rq.ssl_verify = "FAILED:certificate has expired";
    auth_query(&sc, &rq, &r);
    is_int(r.status, AUTH_FAIL, "EXTERNAL: failed verification");
    auth_result_free(&r);
    rq.ssl_verify = NULL;
    auth_query(&sc, &rq, &r);
    is_int(r.status, AUTH_FAIL, "EXTERNAL: no certificate");
    auth_result_free(&r);
    rq.ssl_verify = "SUCCESS";
    rq.user = STR_LIT("");
    auth_query(&sc, &rq, &r);
    is_int(r.status, AUTH_FAIL, "EXTERNAL: empty login");
    auth_result_free(&r);
    rq.user = STR_LIT("ghost");
    auth_query(&sc, &rq, &r);
    is_int(r.status, AUTH_FAIL, "EXTERNAL: unknown user");
    auth_result_free(&r);

    /* SMTP without AUTH: the "*" line */
    sc.protocol = PROTO_SMTP;
    query(&r, AUTH_METHOD_NONE, "", "", 0, NULL);
    is_int(r.status, AUTH_OK, "none: the \"*\" line");
    is_str(r.server, "127.0.0.1", "none: server");
    is_int(r.port, 2525, "none: port");
    is_str(user_of(&r), "relay", "none: backend user");
    auth_result_free(&r);
    auth_file_free(t);

    t = parse("alice {PLAIN}x 10.0.0.1\n", err, sizeof(err));
    sc.auth_file_data = t;
    query(&r, AUTH_METHOD_NONE, "", "", 0, NULL);
    is_int(r.status, AUTH_FAIL, "none without a \"*\" line: FAIL");
    is_str(r.message, "Authentication required", "none: message");
    is_str(r.error_code, "530 5.7.0", "none: SMTP code");
    auth_result_free(&r);
    is_int(login("nobody", "x"), AUTH_FAIL,
           "unknown user with only {PLAIN} entries");
    is_int(crypt_cost("nobody", "x") + crypt_cost("alice", "y"), 0,
           "only {PLAIN} entries: no crypt work for anyone");
    auth_file_free(t);
    sc.protocol = PROTO_IMAP;

    /* malformed lines: exact messages */
    is_str(parse_err("alice {PLAIN}x\n"), "users:1: expected NAME HASH "
           "SERVER[:PORT] [BACKEND-USER], found 2 fields", "two fields");
    is_str(parse_err("# c\n\nalice\n"), "users:3: expected NAME HASH "
           "SERVER[:PORT] [BACKEND-USER], found 1 field", "one field");
    is_str(parse_err("a {PLAIN}x h u extra\n"), "users:1: expected NAME "
           "HASH SERVER[:PORT] [BACKEND-USER], found 5 fields", "five fields");
    is_str(parse_err("a {PLAIN}x h u e f g\n"), "users:1: expected NAME "
           "HASH SERVER[:PORT] [BACKEND-USER], found more than 4 fields",
           "seven fields");
    is_str(parse_err("alice secret 10.0.0.1\n"), "users:1: invalid password "
           "hash: want a crypt(3) string or {PLAIN}secret (user \"alice\")",
           "bare secret");
    is_str(parse_err("alice {PLAIN} 10.0.0.1\n"), "users:1: empty {PLAIN} "
           "secret (user \"alice\")", "empty {PLAIN}");
    is_str(parse_err("alice $99$abc 10.0.0.1\n"), "users:1: invalid or "
           "unsupported crypt(3) hash (user \"alice\")",
           "unknown crypt method");
    /* a hash with a known prefix but a broken body loads, and never
     * matches: crypt(3) refuses it at query time */
    t = parse("alice $y$garbage 10.0.0.1\n", err, sizeof(err));
    ok(t != NULL, "broken yescrypt body loads");
    sc.auth_file_data = t;
    is_int(login("alice", ""), AUTH_FAIL, "broken hash: empty password fails");
    is_int(login("alice", "garbage"), AUTH_FAIL, "broken hash: fails");
    auth_file_free(t);
    is_str(parse_err("a {PLAIN}x host:0\n"), "users:1: invalid port in "
           "\"host:0\"", "port 0");
    is_str(parse_err("a {PLAIN}x host:65536\n"), "users:1: invalid port in "
           "\"host:65536\"", "port 65536");
    is_str(parse_err("a {PLAIN}x host:14x\n"), "users:1: invalid port in "
           "\"host:14x\"", "port not a number");
    is_str(parse_err("a {PLAIN}x host:\n"), "users:1: invalid port in "
           "\"host:\"", "empty port");
    is_str(parse_err("a {PLAIN}x [::1]:\n"), "users:1: invalid port in "
           "\"[::1]:\"", "empty port after IPv6");
    is_str(parse_err("a {PLAIN}x bad/host\n"), "users:1: invalid server "
           "\"bad/host\"", "bad server byte");
    is_str(parse_err("a {PLAIN}x :143\n"), "users:1: invalid server "
           "\":143\"", "empty server");
    is_str(parse_err("a {PLAIN}x [::1\n"), "users:1: invalid server "
           "\"[::1\"", "unclosed bracket");
    is_str(parse_err("a {PLAIN}x [zz::1]:143\n"), "users:1: invalid server "
           "\"[zz::1]:143\"", "bad IPv6");
    is_str(parse_err("a {PLAIN}x [::1]x\n"), "users:1: invalid server "
           "\"[::1]x\"", "junk after bracket");
    is_str(parse_err("a {PLAIN}x 1:2:zz\n"), "users:1: invalid server "
           "\"1:2:zz\"", "bad bare IPv6");
    is_str(parse_err("alice {PLAIN}x h\nbob {PLAIN}y h\n# x\n"
                     "alice {PLAIN}z h\nbob {PLAIN}y h\n"),
           "users:4: duplicate user \"alice\" (first on line 1)",
           "duplicate user: the first duplicate line in the file");
    is_str(parse_err("b {PLAIN}x h\na {PLAIN}x h\nb {PLAIN}x h\n"
                     "a {PLAIN}x h\na {PLAIN}x h\n"),
           "users:3: duplicate user \"b\" (first on line 1)",
           "duplicate user: earliest of several");
    {
        static const char nul[] = "a {PLAIN}x h\nb {PLAIN}\0 h\n";

        t = auth_file_parse("users", (const unsigned char *)nul,
                            sizeof(nul) - 1, err, sizeof(err));
        ok(t == NULL, "NUL byte refused");
        is_str(err, "users:2: NUL byte in line", "NUL message");
    }
    {
        char *lng = malloc(AUTH_FILE_MAX_LINE + 64);

        memset(lng, 'a', AUTH_FILE_MAX_LINE + 1);
        strcpy(lng + AUTH_FILE_MAX_LINE + 1, "\n");
        is_str(parse_err(lng), "users:1: line too long (more than 4096 "
               "bytes)", "over-long line");
        free(lng);
    }
    is_str(parse_err(""), "(parsed)", "empty file is valid");
    is_str(parse_err("# only\n\n  \t\n"), "(parsed)", "comments only");

    /* loading from disk */
    fd = mkstemp(path);
    ok(fd >= 0, "temp file");
    f = fdopen(fd, "w");
    fprintf(f, "alice %s 10.0.0.1\n", y);
    fclose(f);
    t = auth_file_load(path, err, sizeof(err));
    ok(t != NULL, "auth_file_load (%s)", t ? "" : err);
    is_int(auth_file_count(t), 1, "one entry from disk");
    sc.auth_file_data = t;
    is_int(login("alice", "yes-secret"), AUTH_OK, "login against loaded file");
    is_int(login("bob", "yes-secret"), AUTH_FAIL,
           "unknown user spends the dummy hash and fails");
    auth_file_free(t);
    unlink(path);
    t = auth_file_load(path, err, sizeof(err));
    ok(t == NULL, "missing file refused");
    {
        char want[600];

        snprintf(want, sizeof(want), "%s: cannot open: No such file or "
                 "directory", path);
        is_str(err, want, "missing file message");
    }
    t = auth_file_load("/", err, sizeof(err));
    ok(t == NULL, "a directory is refused");
    is_str(err, "/: not a regular file", "directory message");

    /* a server without a loaded file, and with no service at all */
    sc.auth_file_data = NULL;
    query(&r, AUTH_METHOD_PLAIN, "a", "b", 1, NULL);
    is_int(r.status, AUTH_TEMPFAIL, "auth_file set but not loaded: TEMPFAIL");
    ok(r.log_reason != NULL, "with a reason");
    auth_result_free(&r);
    sc.auth_file = NULL;
    query(&r, AUTH_METHOD_PLAIN, "a", "b", 1, NULL);
    is_int(r.status, AUTH_TEMPFAIL, "no service: TEMPFAIL");
    is_str(r.log_reason, "no auth_http or auth_file for this server",
           "no service: reason");
    auth_result_free(&r);

    free(text);
    free(y);
    free(sha);
    free(bf);
    return tap_done();
}
