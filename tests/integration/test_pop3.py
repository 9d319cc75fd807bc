"""POP3 through postern to the private Dovecot (issue 3).

Real clients (poplib, curl) and a raw socket client for byte-exact checks,
with the auth service (authsvc.py) and with the built-in auth_file: every
POP3 authentication method, CAPA, errors and max_errors, timeout, hostile
user names, backend failures (with a scripted fake backend), a 20 MB
message and 200 sessions at once.
"""

import base64
import concurrent.futures
import hashlib
import hmac
import poplib
import re
import socket
import subprocess
import threading

import pytest

import harness
from pop3_util import (FakeBackend, Pop3Raw, apop_digest, b64,
                       closed_port, cram_response, plain_response,
                       reset_authsvc, wait_log)

USERS = harness.USERS
ALL_AUTH = ["plain", "apop", "cram-md5"]


@pytest.fixture
def svc(authsvc, dovecot):
    """The auth service with the Dovecot users and an empty request log."""
    return reset_authsvc(authsvc, dovecot)


@pytest.fixture
def pop(postern, svc):
    """postern with one POP3 server, every method on, auth_http."""
    return postern([{"protocol": "pop3"}],
                   mail={"pop3_auth": ALL_AUTH}, auth=svc.url)


@pytest.fixture(params=["auth_http", "auth_file"])
def pop_any(request, postern, svc, auth_file_for):
    """postern with one POP3 server, by auth_http and by auth_file."""
    if request.param == "auth_http":
        auth = svc.url
    else:
        auth = auth_file_for("pop3")
    return postern([{"protocol": "pop3"}], mail={"pop3_auth": ALL_AUTH},
                   auth=auth)


def fill_box(dovecot, user, n=2):
    dovecot.clear(user)
    msgs = [harness.make_message("pop3 test %d" % i,
                                 body="Body %d.\r\n" % i)
            for i in range(n)]
    for m in msgs:
        dovecot.put_message(user, m)
    return msgs


def check_logged_in(c, n=2):
    """A session that reached Dovecot: STAT and RETR work."""
    count, _size = c.stat()
    assert count == n
    resp, lines, _octets = c.retr(1)
    assert resp.startswith(b"+OK")
    assert any(ln.startswith(b"Subject: pop3 test") for ln in lines)


def assert_closed(c, timeout=5.0):
    assert c.closed_by_peer(timeout), "postern kept the connection open"


# ---------------------------------------------------------------------------
# the login methods

def test_user_pass(pop_any, dovecot):
    fill_box(dovecot, "alice")
    c = poplib.POP3("127.0.0.1", pop_any.port, timeout=10)
    try:
        assert c.getwelcome().startswith(b"+OK POP3 ready")
        c.user("alice")
        assert c.pass_(USERS["alice"]).startswith(b"+OK")
        check_logged_in(c)
        resp, listing, _ = c.list()
        assert resp.startswith(b"+OK") and len(listing) == 2
    finally:
        c.quit()
    wait_log(pop_any, r'client logged in, client: 127\.0\.0\.1, '
             r'server: 127\.0\.0\.1:%d, login: "alice", upstream: '
             r'127\.0\.0\.1:%d\n' % (pop_any.port, dovecot.pop3_port))


def test_user_pass_request(pop, svc, dovecot):
    fill_box(dovecot, "bob")
    c = poplib.POP3("127.0.0.1", pop.port, timeout=10)
    try:
        c.user("bob")
        c.pass_(USERS["bob"])
        check_logged_in(c)
    finally:
        c.quit()
    (rq,) = svc.requests()
    h = rq["headers"]
    assert h["Auth-Method"] == "plain"
    assert h["Auth-Protocol"] == "pop3"
    assert h["Auth-User"] == "bob"
    assert h["Auth-Pass"] == USERS["bob"]
    assert h["Auth-Login-Attempt"] == "1"
    assert h["Client-IP"] == "127.0.0.1"
    assert "Auth-Salt" not in h


def test_apop(pop_any, svc, dovecot):
    fill_box(dovecot, "alice")
    c = poplib.POP3("127.0.0.1", pop_any.port, timeout=10)
    try:
        greeting = c.getwelcome()
        m = re.match(rb"^\+OK POP3 ready (<[^<>@ ]+@[^<> ]+>)$", greeting)
        assert m, greeting
        assert c.apop("alice", USERS["alice"]).startswith(b"+OK")
        check_logged_in(c)
    finally:
        c.quit()
    if pop_any.mail.get("auth_http"):
        (rq,) = svc.requests()
        h = rq["headers"]
        assert h["Auth-Method"] == "apop"
        assert h["Auth-Salt"] == m.group(1).decode()
        assert h["Auth-Pass"] == apop_digest(m.group(1), USERS["alice"])
        assert h["Auth-User"] == "alice"


def test_apop_greeting_only_when_enabled(postern, svc):
    p = postern([{"protocol": "pop3"}], mail={"pop3_auth": ["plain"]},
                auth=svc.url)
    with Pop3Raw(p.port) as c:
        assert c.greeting == b"+OK POP3 ready\r\n"
        # APOP is not on: an invalid command, nothing asked
        assert c.cmd("APOP alice " + "0" * 32).startswith(b"-ERR")
    assert svc.requests() == []


def test_apop_wrong_digest(pop_any):
    with Pop3Raw(pop_any.port) as c:
        ts = c.timestamp()
        r = c.cmd("APOP alice " + apop_digest(ts, "not-the-password"))
        assert r == b"-ERR Invalid login or password\r\n"
    wait_log(pop_any, r'client login failed: "Invalid login or password"')


@pytest.mark.parametrize("initial", [True, False], ids=["ir", "no-ir"])
def test_auth_plain(pop_any, dovecot, initial):
    fill_box(dovecot, "bob")
    resp = plain_response("bob", USERS["bob"])
    with Pop3Raw(pop_any.port) as c:
        if initial:
            r = c.cmd("AUTH PLAIN " + resp)
        else:
            assert c.cmd("AUTH PLAIN") == b"+ \r\n"
            r = c.cmd(resp)
        assert r.startswith(b"+OK"), r
        assert c.cmd("STAT").startswith(b"+OK 2 ")
        assert c.cmd("QUIT").startswith(b"+OK")


@pytest.mark.parametrize("initial", [True, False], ids=["ir", "no-ir"])
def test_auth_login(pop_any, dovecot, initial):
    fill_box(dovecot, "alice")
    with Pop3Raw(pop_any.port) as c:
        if initial:
            r = c.cmd("AUTH LOGIN " + b64("alice"))
        else:
            r = c.cmd("AUTH LOGIN")
            assert r == b"+ VXNlcm5hbWU6\r\n"      # "Username:"
            r = c.cmd(b64("alice"))
        assert r == b"+ UGFzc3dvcmQ6\r\n"          # "Password:"
        r = c.cmd(b64(USERS["alice"]))
        assert r.startswith(b"+OK"), r
        assert c.cmd("STAT").startswith(b"+OK 2 ")


def test_auth_cram_md5(pop_any, svc, dovecot):
    fill_box(dovecot, "bob")
    with Pop3Raw(pop_any.port) as c:
        r = c.cmd("AUTH CRAM-MD5")
        assert r.startswith(b"+ "), r
        challenge = r[2:].strip()
        salt = base64.b64decode(challenge).decode()
        assert re.match(r"^<[^<>@ ]+@[^<> ]+>$", salt), salt
        r = c.cmd(cram_response("bob", USERS["bob"], challenge))
        assert r.startswith(b"+OK"), r
        assert c.cmd("STAT").startswith(b"+OK 2 ")
    if pop_any.mail.get("auth_http"):
        (rq,) = svc.requests()
        h = rq["headers"]
        assert h["Auth-Method"] == "cram-md5"
        assert h["Auth-Salt"] == salt
        assert h["Auth-User"] == "bob"
        assert h["Auth-Pass"] == hmac.new(USERS["bob"].encode(),
                                          salt.encode(),
                                          hashlib.md5).hexdigest()


def test_auth_cram_md5_refuses_initial_response(pop):
    """CRAM-MD5 is server-first: an initial response is a syntax error."""
    with Pop3Raw(pop.port) as c:
        assert c.cmd("AUTH CRAM-MD5 " + b64("bob 00")).startswith(b"-ERR")
        # the session goes on
        assert c.cmd("NOOP") == b"+OK\r\n"


def test_auth_cram_md5_wrong(pop_any):
    with Pop3Raw(pop_any.port) as c:
        challenge = c.cmd("AUTH CRAM-MD5")[2:].strip()
        r = c.cmd(cram_response("bob", "wrong", challenge))
        assert r == b"-ERR Invalid login or password\r\n"


def test_auth_cancel(pop):
    with Pop3Raw(pop.port) as c:
        assert c.cmd("AUTH PLAIN") == b"+ \r\n"
        assert c.cmd("*").startswith(b"-ERR")
        assert c.cmd("NOOP") == b"+OK\r\n"


def test_auth_lists_mechanisms(pop):
    with Pop3Raw(pop.port) as c:
        assert c.cmd("AUTH") == b"+OK methods supported:\r\n"
        assert c.multiline() == [b"PLAIN", b"LOGIN", b"CRAM-MD5"]


def test_auth_unknown_mechanism(pop, svc):
    with Pop3Raw(pop.port) as c:
        assert c.cmd("AUTH GSSAPI").startswith(b"-ERR")
        assert c.cmd("AUTH EXTERNAL").startswith(b"-ERR")
        assert c.cmd("NOOP") == b"+OK\r\n"
    assert svc.requests() == []


# ---------------------------------------------------------------------------
# the other commands

def test_capa(postern, svc):
    p = postern([{"protocol": "pop3"}],
                mail={"pop3_auth": ALL_AUTH,
                      "pop3_capabilities": ["TOP", "USER", "UIDL",
                                            "RESP-CODES", "PIPELINING"]},
                auth=svc.url)
    with Pop3Raw(p.port) as c:
        assert c.cmd("CAPA") == b"+OK Capability list follows\r\n"
        assert c.multiline() == [b"TOP", b"USER", b"UIDL", b"RESP-CODES",
                                 b"PIPELINING", b"SASL PLAIN LOGIN CRAM-MD5"]
        # the same after USER (STLS is never there without TLS)
        assert c.cmd("USER alice") == b"+OK\r\n"
        assert c.cmd("CAPA") == b"+OK Capability list follows\r\n"
        caps = c.multiline()
        assert b"STLS" not in caps and b"SASL PLAIN LOGIN CRAM-MD5" in caps


def test_capa_defaults(postern, svc):
    p = postern([{"protocol": "pop3"}], auth=svc.url)
    with Pop3Raw(p.port) as c:
        assert c.greeting == b"+OK POP3 ready\r\n"
        assert c.cmd("capa") == b"+OK Capability list follows\r\n"
        assert c.multiline() == [b"TOP", b"USER", b"UIDL",
                                 b"SASL PLAIN LOGIN"]


def test_apop_only(postern, svc, dovecot):
    """pop3_auth = ["apop"]: no SASL line, USER/PASS and AUTH refused,
    APOP works."""
    fill_box(dovecot, "bob")
    p = postern([{"protocol": "pop3"}], mail={"pop3_auth": ["apop"]},
                auth=svc.url)
    with Pop3Raw(p.port) as c:
        assert c.timestamp() is not None
        assert c.cmd("CAPA") == b"+OK Capability list follows\r\n"
        caps = c.multiline()
        assert not any(x.startswith(b"SASL") for x in caps), caps
        assert c.cmd("USER bob") == b"-ERR invalid command\r\n"
        assert c.cmd("AUTH PLAIN " + plain_response("bob", USERS["bob"])) \
            == b"-ERR invalid command\r\n"
        r = c.cmd("APOP bob " + apop_digest(c.timestamp(), USERS["bob"]))
        assert r.startswith(b"+OK"), r
        assert c.cmd("STAT").startswith(b"+OK 2 ")
    assert [r["headers"]["Auth-Method"] for r in svc.requests()] == ["apop"]


def test_noop_quit(pop):
    with Pop3Raw(pop.port) as c:
        assert c.cmd("NOOP") == b"+OK\r\n"
        assert c.cmd("noop") == b"+OK\r\n"
        assert c.cmd("QUIT") == b"+OK\r\n"
        assert_closed(c)


def test_quit_after_user(pop):
    with Pop3Raw(pop.port) as c:
        assert c.cmd("USER alice") == b"+OK\r\n"
        assert c.cmd("QUIT") == b"+OK\r\n"
        assert_closed(c)


def test_wrong_password(pop_any):
    with Pop3Raw(pop_any.port) as c:
        assert c.login("alice", "wrong-pw") == \
            b"-ERR Invalid login or password\r\n"
    wait_log(pop_any, r'client login failed: "Invalid login or password"'
             r'.*login: "alice"')


def test_wrong_password_closes_without_wait(pop, svc):
    """As NGINX: without Auth-Wait the session ends after the error."""
    with Pop3Raw(pop.port) as c:
        assert c.login("alice", "wrong-pw").startswith(b"-ERR")
        assert_closed(c)


def test_wrong_password_retry_auth_file(postern, auth_file_for, dovecot):
    """auth_file sends an Auth-Wait: the client may try again."""
    fill_box(dovecot, "alice")
    p = postern([{"protocol": "pop3"}], auth=auth_file_for("pop3"))
    with Pop3Raw(p.port) as c:
        assert c.login("alice", "wrong-pw").startswith(b"-ERR")
        assert c.login("alice", USERS["alice"]).startswith(b"+OK")
        assert c.cmd("STAT").startswith(b"+OK 2 ")


def test_unknown_user(pop_any):
    with Pop3Raw(pop_any.port) as c:
        assert c.login("nobody-here", "x") == \
            b"-ERR Invalid login or password\r\n"


def test_pass_before_user(pop, svc):
    with Pop3Raw(pop.port) as c:
        assert c.cmd("PASS secret") == b"-ERR invalid command\r\n"
        assert c.cmd("NOOP") == b"+OK\r\n"
    assert svc.requests() == []


def test_unknown_and_transaction_commands(pop, svc):
    with Pop3Raw(pop.port) as c:
        for line in ("XYZZY", "STAT", "RETR 1", "LIST"):
            assert c.cmd(line) == b"-ERR invalid command\r\n", line
    with Pop3Raw(pop.port) as c:
        for line in ("USER", "", "USER ", "DELE 1"):
            assert c.cmd(line) == b"-ERR invalid command\r\n", line
        # as NGINX: USER and PASS take the rest of the line, spaces and all
        assert c.cmd("USER John Smith") == b"+OK\r\n"
    with Pop3Raw(pop.port) as c:
        # no TLS configured: STLS is not a command here
        assert c.cmd("STLS") == b"-ERR invalid command\r\n"
        assert c.cmd("NOOP") == b"+OK\r\n"
    assert svc.requests() == []


def test_invalid_command_forgets_user(pop, svc):
    """After USER, anything but PASS/CAPA/NOOP/QUIT starts over."""
    with Pop3Raw(pop.port) as c:
        assert c.cmd("USER alice") == b"+OK\r\n"
        assert c.cmd("STAT") == b"-ERR invalid command\r\n"
        assert c.cmd("PASS " + USERS["alice"]) == \
            b"-ERR invalid command\r\n"
    assert svc.requests() == []


def test_max_errors(postern, svc):
    p = postern([{"protocol": "pop3"}], mail={"max_errors": 3},
                auth=svc.url)
    with Pop3Raw(p.port) as c:
        assert c.cmd("BAD1") == b"-ERR invalid command\r\n"
        assert c.cmd("NOOP") == b"+OK\r\n"
        assert c.cmd("BAD2") == b"-ERR invalid command\r\n"
        assert c.cmd("BAD3") == b"-ERR invalid command\r\n"
        assert_closed(c)
    wait_log(p, "client sent too many invalid commands")


def test_refused_known_commands_are_not_counted(postern, svc):
    """A known command refused for its arguments, state or settings gets
    the same reply as an unknown one but is not counted, as NGINX counts
    only what its parser refuses."""
    p = postern([{"protocol": "pop3"}], mail={"max_errors": 2},
                auth=svc.url)
    with Pop3Raw(p.port) as c:
        for refused in ("USER", "PASS x", "APOP a", "AUTH FOO", "STLS"):
            for _ in range(3):
                assert c.cmd(refused) == b"-ERR invalid command\r\n", \
                    refused
        assert c.cmd("NOOP") == b"+OK\r\n"
        assert c.cmd("STAT") == b"-ERR invalid command\r\n"
        assert c.cmd("RETR 1") == b"-ERR invalid command\r\n"
        assert_closed(c)
    wait_log(p, "client sent too many invalid commands")


def test_timeout_closes_silent_client(postern, svc):
    p = postern([{"protocol": "pop3"}], mail={"timeout": "1s"},
                auth=svc.url)
    with Pop3Raw(p.port) as c:
        assert c.greeting.startswith(b"+OK")
        assert_closed(c, timeout=10)
    wait_log(p, "client timed out")


@pytest.mark.parametrize("where", ["pass", "sasl"])
def test_timeout_mid_login(postern, svc, where):
    """A client that stops halfway (in PASS, in a SASL exchange)."""
    p = postern([{"protocol": "pop3"}], mail={"timeout": "1s"},
                auth=svc.url)
    with Pop3Raw(p.port) as c:
        if where == "pass":
            assert c.cmd("USER alice") == b"+OK\r\n"
            c.send("PASS half-a-line")
        else:
            assert c.cmd("AUTH LOGIN") == b"+ VXNlcm5hbWU6\r\n"
            assert c.cmd(b64("alice")) == b"+ UGFzc3dvcmQ6\r\n"
        assert_closed(c, timeout=10)
    assert svc.requests() == []
    wait_log(p, "client timed out")


@pytest.mark.parametrize("size", [600, 5000, 200000])
def test_long_line(pop, dovecot, size):
    """A line over the bound is an error, and the session goes on."""
    fill_box(dovecot, "alice")
    with Pop3Raw(pop.port, timeout=20) as c:
        r = c.cmd("USER " + "x" * size)
        assert r == b"-ERR invalid command\r\n"
        r = c.cmd("NOOP")
        assert r == b"+OK\r\n"
        assert c.login("alice", USERS["alice"]).startswith(b"+OK")
    wait_log(pop, "client sent too long command")


def test_long_line_counts_as_error(postern, svc):
    p = postern([{"protocol": "pop3"}], mail={"max_errors": 2},
                auth=svc.url)
    with Pop3Raw(p.port) as c:
        c.send(b"x" * 100000 + b"\r\n" + b"y" * 100000 + b"\r\n")
        assert c.readline() == b"-ERR invalid command\r\n"
        assert c.readline() == b"-ERR invalid command\r\n"
        assert_closed(c)


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_long_sasl_answer(pop, mech):
    """An over-long SASL answer is one error: none of its bytes is read
    as a command afterwards."""
    with Pop3Raw(pop.port) as c:
        assert c.cmd("AUTH " + mech).startswith(b"+ ")
        c.send(b"QUFB" * 1500 + b"\r\n")
        assert c.readline() == b"-ERR invalid command\r\n"
        assert c.cmd("NOOP") == b"+OK\r\n"
    wait_log(pop, "client sent too long SASL answer")


def test_pipelined(pop, dovecot):
    fill_box(dovecot, "bob")
    with Pop3Raw(pop.port) as c:
        c.send("NOOP\r\nCAPA\r\nUSER bob\r\nPASS %s\r\nSTAT\r\n"
               % USERS["bob"])
        assert c.readline() == b"+OK\r\n"
        assert c.readline().startswith(b"+OK Capability")
        c.multiline()
        assert c.readline() == b"+OK\r\n"
        assert c.readline().startswith(b"+OK")     # Dovecot's +OK Logged in.
        assert c.readline().startswith(b"+OK 2 ")


# ---------------------------------------------------------------------------
# hostile user names and secrets

HOSTILE = [
    ("crlf", b"eve\r\nAuth-Injected: yes"),
    ("lf", b"eve\nAuth-Injected: yes"),
    ("cr", b"eve\rAuth-Injected: yes"),
    ("nul", b"eve\x00Auth-Injected: yes"),
    ("percent", b"eve%0D%0AAuth-Injected: yes"),
]


def _check_no_injection(p, svc):
    for rq in svc.requests():
        assert "Auth-Injected" not in rq["headers"]
        for k, v in rq["headers"].items():
            assert "\r" not in v and "\n" not in v and "\0" not in v
    log = p.log_text()
    for ln in log.splitlines():
        assert not ln.startswith("Auth-Injected")
    assert "\r" not in log and "\0" not in log


def _check_hostile_request(p, svc, name, user):
    """The request for a hostile user name: a name with CR, LF or NUL is
    refused before the auth service is asked (logged), or sent escaped;
    other bytes arrive escaped and come back exactly."""
    reqs = svc.requests()
    if name in ("crlf", "lf", "cr", "nul") and not reqs:
        wait_log(p, r"client sent a login with CR, LF or NUL")
    else:
        (rq,) = reqs
        assert rq["user"] == user.decode()
        raw = rq["headers"]["Auth-User"]
        if name == "percent":
            assert "%25" in raw
        else:
            assert "%" in raw
        wait_log(p, "client login failed")
    _check_no_injection(p, svc)


@pytest.mark.parametrize("name,user", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_user_auth_login(pop, svc, name, user):
    """Through AUTH LOGIN any byte can be in the user name: it never
    reaches the auth request or the log raw."""
    with Pop3Raw(pop.port) as c:
        assert c.cmd("AUTH LOGIN " + b64(user)).startswith(b"+ ")
        r = c.cmd(b64("pw"))
        assert r.startswith(b"-ERR"), r
        if name != "percent":
            # refused here: the session goes on
            assert c.cmd("NOOP") == b"+OK\r\n"
    _check_hostile_request(pop, svc, name, user)


@pytest.mark.parametrize("name,user", HOSTILE[:2] + HOSTILE[4:],
                         ids=["crlf", "lf", "percent"])
def test_hostile_user_auth_plain(pop, svc, name, user):
    with Pop3Raw(pop.port) as c:
        r = c.cmd("AUTH PLAIN " + plain_response(user, b"pw"))
        assert r.startswith(b"-ERR"), r
    _check_hostile_request(pop, svc, name, user)


def test_hostile_user_raw_line(pop, svc):
    """Raw CR or NUL inside a USER line: the line is refused or the name
    is escaped, never passed on raw."""
    with Pop3Raw(pop.port) as c:
        c.send(b"USER eve\rAuth-Injected: yes\r\n")
        c.readline()
        c.send(b"PASS pw\r\n")
        c.readline()
        c.send(b"USER eve\x00Auth-Injected: yes\r\n")
        c.readline()
        c.send(b"PASS pw\r\n")
        c.readline()
        assert c.cmd("NOOP") in (b"+OK\r\n", b"")
    _check_no_injection(pop, svc)


def test_hostile_user_to_backend(postern, svc, dovecot):
    """A backend user name with a control byte from the auth service never
    reaches the backend's USER line."""
    fake = FakeBackend()
    try:
        reset_authsvc(svc, dovecot, eve={
            "pass": "pw", "server": "127.0.0.1", "port": fake.port,
            "backend_user": "eve%0D%0AQUIT"})
        p = postern([{"protocol": "pop3"}], auth=svc.url)
        with Pop3Raw(p.port) as c:
            r = c.login("eve", "pw")
            assert r.startswith(b"+OK"), r
        # Auth-User is taken verbatim (as NGINX): no unescaping that could
        # make a line break
        assert fake.received[:3] == [b"CAPA", b"USER eve%0D%0AQUIT", b"PASS pw"]
    finally:
        fake.stop()


def _every_method(port, user, pw):
    """One login by each POP3 method with user and pw."""
    with Pop3Raw(port) as c:
        c.login(user, pw)
    with Pop3Raw(port) as c:
        c.cmd("AUTH PLAIN " + plain_response(user, pw))
    with Pop3Raw(port) as c:
        c.cmd("AUTH PLAIN")
        c.cmd(plain_response(user, pw))
    with Pop3Raw(port) as c:
        c.cmd("AUTH LOGIN " + b64(user))
        c.cmd(b64(pw))
    with Pop3Raw(port) as c:
        ch = c.cmd("AUTH CRAM-MD5")[2:].strip()
        c.cmd(cram_response(user, pw, ch))
    with Pop3Raw(port) as c:
        c.cmd("APOP %s %s" % (user, apop_digest(c.timestamp(), pw)))


def _assert_not_logged(p, secrets, logins):
    log = p.log_text()
    assert log.count("client logged in") == logins, p.logs()
    for pw in secrets:
        for bad in (pw, b64(pw), plain_response("alice", pw)):
            assert bad not in log, "secret %r in the log" % bad


def test_password_never_logged_auth_http(postern, svc, dovecot):
    """Every method, right and wrong, at debug level: the passwords (the
    client's and the one the auth service sends for the backend) show up
    nowhere in the error log."""
    secret = "Zq7-pw-never-logged"
    reset_authsvc(svc, dovecot, alice={
        "pass": secret, "server": "127.0.0.1", "port": dovecot.pop3_port,
        "backend_user": "alice", "backend_pass": USERS["alice"]})
    p = postern([{"protocol": "pop3"}], mail={"pop3_auth": ALL_AUTH},
                auth=svc.url)
    fill_box(dovecot, "alice")
    _every_method(p.port, "alice", secret)
    _every_method(p.port, "alice", secret + "-wrong")
    _assert_not_logged(p, [secret, USERS["alice"]], 6)


def test_password_never_logged_auth_file(postern, dovecot, auth_file_for):
    p = postern([{"protocol": "pop3"}], mail={"pop3_auth": ALL_AUTH},
                auth=auth_file_for("pop3"))
    fill_box(dovecot, "alice")
    _every_method(p.port, "alice", USERS["alice"])
    _every_method(p.port, "alice", "Zq7-wrong-never-logged")
    _assert_not_logged(p, [USERS["alice"], "Zq7-wrong-never-logged"], 6)


# ---------------------------------------------------------------------------
# backend failures

def _pop_to(postern, svc, dovecot, port, **mail):
    reset_authsvc(svc, dovecot, carol={
        "pass": "carol-pw", "server": "127.0.0.1", "port": port})
    return postern([{"protocol": "pop3"}], mail=mail, auth=svc.url)


def test_backend_down(postern, svc, dovecot):
    p = _pop_to(postern, svc, dovecot, closed_port())
    with Pop3Raw(p.port) as c:
        assert c.login("carol", "carol-pw") == \
            b"-ERR internal server error\r\n"
        assert_closed(c)
    wait_log(p, r"\[error\].*(refused|connect).*while connecting to "
             r"upstream.*login: \"carol\"")


def test_backend_down_auth_file(postern):
    p = postern([{"protocol": "pop3"}],
                auth=[("carol", "{PLAIN}carol-pw",
                       "127.0.0.1:%d" % closed_port())])
    with Pop3Raw(p.port) as c:
        assert c.login("carol", "carol-pw") == \
            b"-ERR internal server error\r\n"
    # the error in NGINX's words, "(111: Connection refused)"
    wait_log(p, r"(?m)\[error\].* connect\(\) to 127\.0\.0\.1:\d+ failed \(111: "
             r"Connection refused\) while connecting to upstream, client: "
             r"127\.0\.0\.1, server: .*, upstream: 127\.0\.0\.1:\d+$")


@pytest.mark.parametrize("capa", [b"+OK\r\nUSER\r\nPIPELINING\r\n.",
                                  b"+OK\r\nUSER\r\n.",
                                  b"-ERR unknown command"],
                         ids=["pipelining", "no-pipelining", "no-capa"])
def test_backend_capa_once(postern, svc, dovecot, capa):
    """postern asks a backend's CAPA once (it is remembered for a minute),
    and sends USER and PASS together to one that lists PIPELINING (RFC
    2449), one at a time to any other, as NGINX does always."""
    fake = FakeBackend(replies={"CAPA": capa})
    together = b"PIPELINING" in capa
    try:
        p = _pop_to(postern, svc, dovecot, fake.port)
        for _ in range(3):
            with Pop3Raw(p.port) as c:
                assert c.login("carol", "carol-pw").startswith(b"+OK")
                assert c.cmd("QUIT").startswith(b"+OK")
        harness.wait_for(lambda: len(fake.received) >= 10, 10,
                         what="the three logins at the backend")
        assert fake.received == [b"CAPA"] + [b"USER carol", b"PASS carol-pw",
                                             b"QUIT"] * 3
        # the answer to USER went after PASS had come, or before it
        assert fake.pipelined[1::3] == [together] * 3, fake.pipelined
    finally:
        fake.stop()


def test_dovecot_pipelined_logins(postern, svc, dovecot):
    """Dovecot's CAPA lists PIPELINING: after the first login, USER and PASS
    go to it together, and every login works."""
    d = poplib.POP3("127.0.0.1", dovecot.pop3_port, timeout=10)
    try:
        assert "PIPELINING" in d.capa()
    finally:
        d.quit()
    reset_authsvc(svc, dovecot)
    p = postern([{"protocol": "pop3"}], auth=svc.url)
    for _ in range(3):
        m = poplib.POP3("127.0.0.1", p.port, timeout=10)
        try:
            m.user("alice")
            assert m.pass_(harness.USERS["alice"]).startswith(b"+OK")
            m.stat()
        finally:
            m.quit()
    assert "upstream sent" not in p.log_text(), p.logs()


@pytest.mark.parametrize("pass_msg", [False, True], ids=["plain", "pass-msg"])
def test_backend_refuses_login(postern, svc, dovecot, pass_msg):
    fake = FakeBackend(replies={"PASS": b"-ERR [AUTH] no such mailbox"})
    try:
        p = _pop_to(postern, svc, dovecot, fake.port,
                    proxy_pass_error_message=pass_msg)
        with Pop3Raw(p.port) as c:
            r = c.login("carol", "carol-pw")
            if pass_msg:
                assert r == b"-ERR [AUTH] no such mailbox\r\n"
            else:
                assert r == b"-ERR internal server error\r\n"
            assert_closed(c)
        assert fake.received[:3] == [b"CAPA", b"USER carol", b"PASS carol-pw"]
        wait_log(p, r'upstream sent invalid response: "-ERR \[AUTH\] no '
                 r'such mailbox" while reading response from upstream')
    finally:
        fake.stop()


def test_real_backend_refuses_login(postern, svc, dovecot):
    """The auth service says yes, Dovecot says no (a wrong backend
    password)."""
    reset_authsvc(svc, dovecot, carol={
        "pass": "carol-pw", "server": "127.0.0.1", "port": dovecot.pop3_port,
        "backend_user": "alice", "backend_pass": "not-alices"})
    p = postern([{"protocol": "pop3"}], auth=svc.url)
    with Pop3Raw(p.port) as c:
        assert c.login("carol", "carol-pw") == \
            b"-ERR internal server error\r\n"
    wait_log(p, r"upstream sent invalid response: \"-ERR")


@pytest.mark.parametrize("greeting", [
    b"* OK IMAP4rev1 ready",
    b"-ERR go away",
    b"\x00\x01garbage",
    None,
], ids=["imap", "err", "garbage", "silent-close"])
def test_backend_bad_greeting(postern, svc, dovecot, greeting):
    fake = FakeBackend(greeting=greeting)
    try:
        p = _pop_to(postern, svc, dovecot, fake.port)
        with Pop3Raw(p.port) as c:
            assert c.login("carol", "carol-pw") == \
                b"-ERR internal server error\r\n"
            assert_closed(c)
        if greeting is None:
            wait_log(p, r"\[error\].*upstream prematurely closed connection"
                     r" while reading greeting from upstream")
        else:
            wait_log(p, r"\[error\].*upstream sent invalid response.* while "
                     r"reading greeting from upstream")
        # the password never went to a backend that greeted wrongly
        assert fake.received == []
    finally:
        fake.stop()


def test_backend_silent(postern, svc, dovecot):
    """A backend that accepts and says nothing: timeout ends the wait."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    try:
        p = _pop_to(postern, svc, dovecot, srv.getsockname()[1],
                    timeout="2s")
        with Pop3Raw(p.port) as c:
            assert c.login("carol", "carol-pw") == \
                b"-ERR internal server error\r\n"
        wait_log(p, "upstream timed out")
    finally:
        srv.close()


# ---------------------------------------------------------------------------
# real clients and volume

def test_curl(postern, svc, dovecot, tmp_path):
    msgs = fill_box(dovecot, "alice", 3)
    p = postern([{"protocol": "pop3"}], mail={"pop3_auth": ALL_AUTH},
                auth=svc.url)
    url = "pop3://127.0.0.1:%d/" % p.port
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-u",
                        "alice:" + USERS["alice"], url],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    listing = r.stdout.decode().splitlines()
    assert [ln.split()[0] for ln in listing] == ["1", "2", "3"]
    assert [int(ln.split()[1]) for ln in listing] == [len(m) for m in msgs]
    out = tmp_path / "m2"
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-u",
                        "alice:" + USERS["alice"], url + "2", "-o", str(out)],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == msgs[1]
    # curl's SASL (it prefers AUTH over USER/PASS when offered)
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "--login-options",
                        "AUTH=PLAIN", "-u", "alice:" + USERS["alice"],
                        url + "1"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == msgs[0]
    for opt in ("AUTH=+APOP", "AUTH=CRAM-MD5", "AUTH=LOGIN"):
        r = subprocess.run(["curl", "-sS", "--max-time", "20",
                            "--login-options", opt, "-u",
                            "alice:" + USERS["alice"], url + "3"],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, (opt, r.stderr)
        assert r.stdout == msgs[2], opt
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-u",
                        "alice:wrong", url], capture_output=True, timeout=30)
    assert r.returncode != 0


def test_retr_20mb(postern, svc, dovecot, monkeypatch):
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" \
        b"0123456789abcdefghijklmnopqrstuvwxyz.\r\n"
    body = bytearray()
    i = 0
    while len(body) < 20 * 1024 * 1024:
        # some long lines and some leading dots, which POP3 stuffs
        if i % 1000 == 0:
            body += b"." + b"L" * 20000 + b"\r\n"
        body += b"%08d " % i + line
        i += 1
    msg = harness.make_message("big", body=bytes(body), to="bob@example.test")
    dovecot.clear("bob")
    dovecot.put_message("bob", msg)
    p = postern([{"protocol": "pop3"}], auth=svc.url)
    monkeypatch.setattr(poplib, "_MAXLINE", 1 << 20)
    c = poplib.POP3("127.0.0.1", p.port, timeout=60)
    try:
        c.user("bob")
        c.pass_(USERS["bob"])
        resp, lines, octets = c.retr(1)
        assert resp.startswith(b"+OK")
        got = b"\r\n".join(lines) + b"\r\n"
        assert len(got) == len(msg)
        assert hashlib.sha256(got).hexdigest() == \
            hashlib.sha256(msg).hexdigest()
    finally:
        c.quit()


def test_200_parallel_sessions(postern, svc, dovecot):
    msgs = fill_box(dovecot, "alice", 2)
    p = postern([{"protocol": "pop3"}],
                top={"worker_threads": 16},
                mail={"preauth_per_client": 16}, auth=svc.url)
    n = 200
    start = threading.Barrier(n, timeout=60)

    def one(i):
        start.wait()        # every session starts at the same moment
        c = poplib.POP3("127.0.0.1", p.port, timeout=60)
        try:
            c.user("alice")
            c.pass_(USERS["alice"])
            _resp, lines, _ = c.retr(1 + i % 2)
            return b"\r\n".join(lines) + b"\r\n" == msgs[i % 2]
        finally:
            c.quit()

    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
        results = list(ex.map(one, range(n), timeout=120))
    assert results == [True] * n
    assert p.log_text().count("client logged in") == n
    assert p.alive()
