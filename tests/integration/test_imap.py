"""IMAP through postern to a private Dovecot: every pre-login command and
auth method, with auth_http (authsvc.py) and the built-in auth_file; the
limits (max_errors, timeout, imap_client_buffer, tags, literals); the
backend and the auth service failing; the relay; many sessions at once;
and the pool under 300 silent clients.

Raw sockets check bytes; imaplib and curl check that real clients work.
See issue 3 for what is expected (NGINX's mail module, plus ID)."""

import base64
import hashlib
import imaplib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import harness
from imap_util import (EXTRA_USERS, FakeBackend, ManyDovecot, Raw, b64,
                       closed_port, cram_answer, dave_at, log_lines)

USERS = dict(harness.USERS)
USERS.update(EXTRA_USERS)
INTERNAL = b"* BAD internal server error\r\n"


# --------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="module")
def dovecot():
    """Overrides conftest's: more users and room for 200 sessions."""
    harness.backends_missing(harness.DOVECOT)
    dc = ManyDovecot(USERS)
    try:
        dc.start()
    except harness.HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    yield dc
    dc.stop()


@pytest.fixture(params=["http", "file"])
def kind(request):
    """Run the test with auth_http (authsvc.py) and with auth_file."""
    return request.param


@pytest.fixture
def imap_px(postern, authsvc, auth_file_for):
    """Factory: a started postern with one IMAP server.

    kind "http" uses authsvc at `path`, "file" the auth_file for the
    Dovecot users (extra entries appended)."""
    def make(kind="http", mail=None, top=None, server=None, path="/auth",
             file_extra=(), url=None):
        srv = {"protocol": "imap"}
        srv.update(server or {})
        if url is not None:
            auth = url
        elif kind == "http":
            auth = "http://127.0.0.1:%d%s" % (authsvc.port, path)
        else:
            auth = auth_file_for("imap") + list(file_extra)
        return postern([srv], mail=mail, top=top, auth=auth)
    return make


class users_with:
    """Context: authsvc's users plus extra entries, restored after."""

    def __init__(self, svc, extra):
        self.svc = svc
        self.extra = extra

    def __enter__(self):
        self.saved = dict(self.svc.users)
        users = dict(self.saved)
        users.update(self.extra)
        self.svc.write_users(users)
        return self

    def __exit__(self, *exc):
        self.svc.write_users(self.saved)


def login_ok(line, tag):
    return line.startswith(tag.encode() + b" OK")


def selected(c, tag="s"):
    """SELECT INBOX on a logged-in raw client; Dovecot answers it."""
    line, lines = c.run(tag, "SELECT INBOX")
    assert login_ok(line, tag), lines
    assert any(b"FLAGS" in ln for ln in lines), lines
    return lines


def auth_requests_since(svc, n):
    return svc.requests()[n:]


# --------------------------------------------------------------------------
# greeting and pre-login commands

def test_greeting_noop_logout_id(imap_px):
    p = imap_px("file")
    with Raw(p.port) as c:
        assert c.greeting == b"* OK IMAP4 ready\r\n"
        assert c.run("a1", "NOOP")[0] == b"a1 OK completed\r\n"
        line, lines = c.run("a2", "ID NIL")
        assert lines == [b"* ID NIL\r\n", b"a2 OK completed\r\n"]
        line, lines = c.run("a3", 'ID ("name" "Thunderbird" "version" "1")')
        assert lines == [b"* ID NIL\r\n", b"a3 OK completed\r\n"]
        line, lines = c.run("a4", "LOGOUT")
        # RFC 3501: BYE's resp-text is not empty
        assert lines == [b"* BYE logging out\r\n", b"a4 OK completed\r\n"]
        assert c.closed_by_peer(5)


@pytest.mark.parametrize("caps,auth,want", [
    (None, None, b"* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN\r\n"),
    (["IMAP4rev1", "IDLE", "SASL-IR"], ["login", "cram-md5"],
     b"* CAPABILITY IMAP4rev1 IDLE SASL-IR AUTH=LOGIN AUTH=CRAM-MD5 "
     b"LOGINDISABLED\r\n"),
    (["IMAP4rev1"], ["plain", "login", "cram-md5", "external"],
     b"* CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=LOGIN AUTH=CRAM-MD5 "
     b"AUTH=EXTERNAL\r\n"),
], ids=["default", "custom", "all-mechs"])
def test_capability(imap_px, caps, auth, want):
    mail = {}
    if caps is not None:
        mail["imap_capabilities"] = caps
    if auth is not None:
        mail["imap_auth"] = auth
    p = imap_px("file", mail=mail)
    with Raw(p.port) as c:
        line, lines = c.run("c", "CAPABILITY")
        assert lines == [want, b"c OK completed\r\n"]
    # imaplib reads the same list
    m = imaplib.IMAP4("127.0.0.1", p.port, timeout=10)
    try:
        assert set(m.capabilities) == set(want.decode().upper().split()[2:])
    finally:
        m.shutdown()


@pytest.mark.parametrize("word,why", [
    ("X\x01(Y", "not an IMAP atom"),
    ("\\", "not an IMAP atom"),
    ("STARTTLS", "postern announces STARTTLS itself"),
    ("LOGINDISABLED", "postern announces LOGINDISABLED itself"),
    ("AUTH=PLAIN", "postern announces the AUTH= mechanisms itself"),
], ids=["ctl-paren", "backslash", "starttls", "logindisabled", "auth"])
def test_capability_refused_at_load(postern_config, auth_file_for, word,
                                    why):
    """imap_capabilities: words that are no IMAP atom, or that postern
    announces itself as its settings say, fail the load with FILE:LINE
    (they used to be sent to clients as they were)."""
    p = postern_config([{"protocol": "imap"}], auth=auth_file_for("imap"),
                       mail={"imap_capabilities": ["IMAP4rev1", word]})
    r = p.run("-t")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert re.search(re.escape(p.conf) + r":\d+: imap_capabilities: \".*\": "
                     + re.escape(why), out), out


# --------------------------------------------------------------------------
# LOGIN in every syntax

def test_login_imaplib(imap_px, kind, dovecot):
    dovecot.clear("alice")
    dovecot.put_message("alice", harness.make_message("imaplib login"))
    p = imap_px(kind)
    m = imaplib.IMAP4("127.0.0.1", p.port, timeout=10)
    try:
        assert m.login("alice", USERS["alice"])[0] == "OK"
        typ, data = m.select("INBOX")
        assert typ == "OK" and int(data[0]) == 1
        typ, data = m.fetch("1", "(BODY.PEEK[])")
        assert b"Subject: imaplib login" in data[0][1]
    finally:
        m.logout()
    # imaplib quotes carol's password (" and \) itself
    m = imaplib.IMAP4("127.0.0.1", p.port, timeout=10)
    try:
        assert m.login("carol", USERS["carol"])[0] == "OK"
        assert m.select("INBOX")[0] == "OK"
    finally:
        m.logout()


def test_login_atoms_and_quoted(imap_px, kind):
    p = imap_px(kind)
    with Raw(p.port) as c:
        line, _ = c.run("a", "LOGIN alice alice-pw")
        assert login_ok(line, "a"), line
        selected(c)
    with Raw(p.port) as c:
        line, _ = c.run("a", 'LOGIN "alice" "alice-pw"')
        assert login_ok(line, "a"), line
        selected(c)
    with Raw(p.port) as c:
        # carol's password is q"uo\te: quoted as "q\"uo\\te"
        line, _ = c.run("a", 'LOGIN "carol" "q\\"uo\\\\te"')
        assert login_ok(line, "a"), line
        selected(c)


def test_login_synchronizing_literals(imap_px, kind):
    p = imap_px(kind)
    pw = USERS["carol"].encode()
    with Raw(p.port) as c:
        c.send(b"a LOGIN {5}\r\n")
        assert c.readline() == b"+ OK\r\n"
        c.send(b"carol {%d}\r\n" % len(pw))
        assert c.readline() == b"+ OK\r\n"
        c.send(pw + b"\r\n")
        lines = c.tagged("a")
        assert login_ok(lines[-1], "a"), lines
        selected(c)


def test_login_after_waiting_without_a_worker(imap_px, kind, dovecot):
    """With one worker: a client that stops in the middle of a LOGIN with
    literals (its user name sent, its password not) leaves the worker to
    another client, which logs in and reads its mail; the first then sends
    its password, logs in and reads its own."""
    dovecot.clear("alice")
    dovecot.put_message("alice", harness.make_message("after the wait"))
    p = imap_px(kind, top={"worker_threads": 1}, mail={"timeout": "60s"})
    pw = USERS["carol"].encode()
    with Raw(p.port) as a:
        a.send(b"a LOGIN {5}\r\n")
        assert a.readline() == b"+ OK\r\n"
        a.send(b"carol {%d}\r\n" % len(pw))
        assert a.readline() == b"+ OK\r\n"
        # a is silent in the middle of its command: another is served
        m = imaplib.IMAP4("127.0.0.1", p.port, timeout=5)
        try:
            assert m.login("alice", USERS["alice"])[0] == "OK"
            assert m.select("INBOX")[0] == "OK"
            typ, data = m.fetch("1", "(BODY.PEEK[])")
            assert b"Subject: after the wait" in data[0][1]
        finally:
            m.logout()
        a.send(pw + b"\r\n")
        lines = a.tagged("a")
        assert login_ok(lines[-1], "a"), (lines, p.logs())
        selected(a)
    assert "timed out" not in p.log_text(), p.logs()


def test_authenticate_after_waiting_without_a_worker(imap_px, kind):
    """With one worker: a client that leaves AUTHENTICATE PLAIN's
    challenge unanswered leaves the worker to another client, then
    answers, logs in and selects its mailbox."""
    p = imap_px(kind, top={"worker_threads": 1}, mail={"timeout": "60s"})
    with Raw(p.port) as a:
        a.send(b"a AUTHENTICATE PLAIN\r\n")
        assert a.readline().startswith(b"+")
        with Raw(p.port, timeout=5) as other:
            line, _ = other.run("o", "LOGIN alice alice-pw")
            assert login_ok(line, "o"), line
            selected(other)
        a.send(b64("\0carol\0" + USERS["carol"]) + "\r\n")
        lines = a.tagged("a")
        assert login_ok(lines[-1], "a"), (lines, p.logs())
        selected(a)
    assert "timed out" not in p.log_text(), p.logs()


def test_login_nonsynchronizing_literals(imap_px, kind):
    p = imap_px(kind)
    pw = USERS["carol"].encode()
    with Raw(p.port) as c:
        c.send(b"a LOGIN {5+}\r\ncarol {%d+}\r\n%s\r\n" % (len(pw), pw))
        lines = c.tagged("a")
        assert not any(ln.startswith(b"+") for ln in lines), lines
        assert login_ok(lines[-1], "a"), lines
        selected(c)


# --------------------------------------------------------------------------
# AUTHENTICATE

ALL_MECHS = {"imap_auth": ["plain", "login", "cram-md5"]}


def test_authenticate_imaplib(imap_px, kind):
    p = imap_px(kind, mail=ALL_MECHS)
    for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
        m = imaplib.IMAP4("127.0.0.1", p.port, timeout=10)
        try:
            if mech == "CRAM-MD5":
                typ, _ = m.login_cram_md5("bob", USERS["bob"])
            elif mech == "PLAIN":
                typ, _ = m.authenticate(
                    "PLAIN", lambda _c: b"\0bob\0" + USERS["bob"].encode())
            else:
                answers = iter([b"bob", USERS["bob"].encode()])
                typ, _ = m.authenticate("LOGIN", lambda _c: next(answers))
            assert typ == "OK", mech
            assert m.select("INBOX")[0] == "OK", mech
        finally:
            m.logout()


def test_authenticate_raw(imap_px, kind, authsvc):
    p = imap_px(kind, mail=ALL_MECHS)
    pw = USERS["carol"]
    # PLAIN with an initial response (SASL-IR)
    with Raw(p.port) as c:
        line, lines = c.run("a", "AUTHENTICATE PLAIN " + b64("\0carol\0" + pw))
        assert login_ok(line, "a"), lines
        selected(c)
    # PLAIN without: an empty challenge first
    with Raw(p.port) as c:
        c.send("a AUTHENTICATE PLAIN\r\n")
        assert c.readline() == b"+ \r\n"
        c.send(b64("carol\0carol\0" + pw) + "\r\n")
        lines = c.tagged("a")
        assert login_ok(lines[-1], "a"), lines
        selected(c)
    # LOGIN with the user as initial response, then Password:
    with Raw(p.port) as c:
        c.send("a AUTHENTICATE LOGIN " + b64("carol") + "\r\n")
        assert c.readline() == b"+ UGFzc3dvcmQ6\r\n"
        c.send(b64(pw) + "\r\n")
        lines = c.tagged("a")
        assert login_ok(lines[-1], "a"), lines
        selected(c)
    # LOGIN without: Username:, Password:
    with Raw(p.port) as c:
        c.send("a AUTHENTICATE LOGIN\r\n")
        assert c.readline() == b"+ VXNlcm5hbWU6\r\n"
        c.send(b64("carol") + "\r\n")
        assert c.readline() == b"+ UGFzc3dvcmQ6\r\n"
        c.send(b64(pw) + "\r\n")
        lines = c.tagged("a")
        assert login_ok(lines[-1], "a"), lines
        selected(c)
    # CRAM-MD5: the challenge is <...@server_name>; Dovecot gets the
    # password from the auth service (Auth-Pass) or auth_file's {PLAIN}
    n = len(authsvc.requests())
    with Raw(p.port) as c:
        c.send("a AUTHENTICATE CRAM-MD5\r\n")
        chal = c.readline()
        assert chal.startswith(b"+ "), chal
        text = base64.b64decode(chal[2:].strip())
        assert re.match(rb"^<\d+\.\d+@[^>]+>$", text), text
        c.send(cram_answer("carol", pw, chal[2:].strip()) + "\r\n")
        lines = c.tagged("a")
        assert login_ok(lines[-1], "a"), lines
        selected(c)
    if kind == "http":
        rq = auth_requests_since(authsvc, n)
        assert rq and rq[-1]["headers"]["Auth-Method"] == "cram-md5"
        assert rq[-1]["headers"]["Auth-Salt"].encode() == text
    # CRAM-MD5 with an initial response is a syntax error
    with Raw(p.port) as c:
        line, _ = c.run("a", "AUTHENTICATE CRAM-MD5 " + b64("carol x"))
        assert line == b"a BAD invalid command\r\n"
        assert c.run("b", "NOOP")[0] == b"b OK completed\r\n"


def test_server_name_fits_the_challenge(imap_px, postern_config,
                                       auth_file_for):
    """server_name is a DNS name, 253 bytes at most: the longest one makes
    a CRAM-MD5 challenge; a longer one is refused at load with FILE:LINE
    (it used to be accepted, and every CRAM-MD5 attempt ended the session
    without a reply)."""
    name = ".".join(["x" * 63] * 3 + ["x" * 61])
    assert len(name) == 253
    p = imap_px("file", mail=dict(ALL_MECHS, server_name=name))
    with Raw(p.port) as c:
        c.send("a AUTHENTICATE CRAM-MD5\r\n")
        chal = c.readline()
        assert chal.startswith(b"+ "), chal
        text = base64.b64decode(chal[2:].strip())
        assert text.endswith(b"@" + name.encode() + b">"), text
        c.send(cram_answer("bob", USERS["bob"], chal[2:].strip()) + "\r\n")
        lines = c.tagged("a")
        assert login_ok(lines[-1], "a"), lines
    p = postern_config([{"protocol": "imap"}], auth=auth_file_for("imap"),
                       mail=dict(ALL_MECHS, server_name=name + "x"))
    r = p.run("-t")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert re.search(re.escape(p.conf) + r":\d+: server_name: 254 bytes "
                     r"long, more than 253", out), out


def test_authenticate_cancel_and_bad_base64(imap_px):
    p = imap_px("http", mail=ALL_MECHS)
    with Raw(p.port) as c:
        c.send("a AUTHENTICATE LOGIN\r\n")
        assert c.readline().startswith(b"+ ")
        c.send("*\r\n")
        assert c.readline() == b"a BAD invalid command\r\n"
        c.send("b AUTHENTICATE PLAIN\r\n")
        assert c.readline() == b"+ \r\n"
        c.send("!!notbase64!!\r\n")
        assert c.readline() == b"b BAD invalid command\r\n"
        # nothing of the aborted exchanges is left: a fresh login works
        line, _ = c.run("c", "LOGIN bob bob-pw")
        assert login_ok(line, "c"), line


def test_authenticate_not_enabled_and_external(imap_px, authsvc):
    # only plain is enabled by default: the rest is BAD
    p = imap_px("http")
    with Raw(p.port) as c:
        for i, mech in enumerate(("LOGIN", "CRAM-MD5", "EXTERNAL", "XYZ")):
            tag = "t%d" % i
            line, _ = c.run(tag, "AUTHENTICATE " + mech)
            assert line == tag.encode() + b" BAD invalid command\r\n", mech
    # EXTERNAL enabled, but no TLS and so no verified certificate: the
    # auth service refuses it
    p = imap_px("http", mail={"imap_auth": ["plain", "external"]})
    n = len(authsvc.requests())
    with Raw(p.port) as c:
        line, _ = c.run("e", "AUTHENTICATE EXTERNAL " + b64("alice"))
        assert line.startswith(b"e NO "), line
    rq = auth_requests_since(authsvc, n)
    assert rq and rq[-1]["headers"]["Auth-Method"] == "external"
    assert "Auth-SSL-Verify" not in rq[-1]["headers"]
    assert rq[-1]["result"] == "FAIL"


def test_login_refused_without_plain(imap_px, authsvc):
    """imap_auth without "plain" refuses the LOGIN command as it refuses
    AUTHENTICATE PLAIN (both send the password in clear), and CAPABILITY
    says LOGINDISABLED so that a client does not try."""
    p = imap_px("http", mail={"imap_auth": ["cram-md5"]})
    n = len(authsvc.requests())
    with Raw(p.port) as c:
        line, lines = c.run("a1", "CAPABILITY")
        assert lines == [b"* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS "
                         b"AUTH=CRAM-MD5 LOGINDISABLED\r\n",
                         b"a1 OK completed\r\n"]
        assert c.run("a2", "LOGIN alice alice-pw")[0] == \
            b"a2 BAD invalid command\r\n"
        assert c.run("a3", 'LOGIN "alice" "alice-pw"')[0] == \
            b"a3 BAD invalid command\r\n"
        # not counted against max_errors, and CRAM-MD5 still works
        c.send("a4 AUTHENTICATE CRAM-MD5\r\n")
        chal = c.readline()
        assert chal.startswith(b"+ "), chal
        c.send(cram_answer("alice", USERS["alice"], chal[2:].strip())
               + "\r\n")
        lines = c.tagged("a4")
        assert login_ok(lines[-1], "a4"), lines
    # the refused LOGINs never reached the auth service
    rq = auth_requests_since(authsvc, n)
    assert [r["headers"]["Auth-Method"] for r in rq] == ["cram-md5"], rq
    # imaplib reads LOGINDISABLED (but sends LOGIN all the same)
    m = imaplib.IMAP4("127.0.0.1", p.port, timeout=10)
    try:
        assert "LOGINDISABLED" in m.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="invalid command"):
            m.login("alice", "alice-pw")
    finally:
        m.shutdown()
    # with "plain", LOGIN is accepted and not disabled (see test_capability)
    p = imap_px("http", mail={"imap_auth": ["plain", "cram-md5"]})
    with Raw(p.port) as c:
        line, lines = c.run("b1", "CAPABILITY")
        assert b"LOGINDISABLED" not in lines[0], lines
        assert login_ok(c.run("b2", "LOGIN alice alice-pw")[0], "b2")


# --------------------------------------------------------------------------
# refused logins

def test_wrong_password_http(imap_px, authsvc):
    p = imap_px("http")
    with Raw(p.port) as c:
        line, _ = c.run("a", "LOGIN alice wrong-pw")
        assert line == b"a NO Invalid login or password\r\n"
        # no Auth-Wait: the session ends (as NGINX)
        assert c.closed_by_peer(5)
    assert "client login failed" in p.log_text()


def test_wrong_password_file(imap_px):
    p = imap_px("file")
    with Raw(p.port) as c:
        line, _ = c.run("a", "LOGIN alice wrong-pw")
        assert line == b"a NO Invalid login or password\r\n"
        line, _ = c.run("x", "AUTHENTICATE PLAIN " + b64("\0alice\0wrong"))
        assert line == b"x NO Invalid login or password\r\n"
        # auth_file lets the client try again (after its delay)
        line, _ = c.run("b", "LOGIN alice alice-pw")
        assert login_ok(line, "b"), line
    m = imaplib.IMAP4("127.0.0.1", p.port, timeout=10)
    try:
        with pytest.raises(imaplib.IMAP4.error, match="Invalid login"):
            m.login("nosuchuser", "x")
    finally:
        m.shutdown()


def test_auth_wait_retry(imap_px, authsvc):
    p = imap_px("http", path="/wait")
    n = len(authsvc.requests())
    with Raw(p.port) as c:
        line, _ = c.run("a", "LOGIN alice alice-pw")
        assert line == b"a NO Invalid login or password\r\n"
        line, _ = c.run("b", "LOGIN alice alice-pw")
        assert line == b"b NO Invalid login or password\r\n"
        assert c.run("c", "NOOP")[0] == b"c OK completed\r\n"
    rq = auth_requests_since(authsvc, n)
    assert [r["headers"]["Auth-Login-Attempt"] for r in rq] == ["1", "2"]
    # nothing of attempt 1 survives: the second request is complete too
    assert all(r["headers"]["Auth-User"] == "alice" for r in rq)


def test_auth_status_message_passed_with_wait(imap_px, authsvc):
    """Any Auth-Status but OK is the client's NO text (as NGINX); with
    Auth-Wait the client may try again."""
    p = imap_px("http", path="/tempfail")
    with Raw(p.port) as c:
        line, _ = c.run("a", "LOGIN alice alice-pw")
        assert line == b"a NO Temporary server problem, try again later\r\n"
        assert c.run("b", "NOOP")[0] == b"b OK completed\r\n"


def test_auth_status_wait_asks_again(imap_px, authsvc):
    """"Auth-Status: WAIT": postern waits Auth-Wait seconds and asks again
    with the same credentials; the client sees only the final answer."""
    p = imap_px("http", path="/status-wait")
    n = len(authsvc.requests())
    with Raw(p.port) as c:
        line, _ = c.run("a", "LOGIN alice alice-pw")
        assert login_ok(line, "a"), line
        selected(c)
    rq = auth_requests_since(authsvc, n)
    assert [r["result"] for r in rq] == ["WAIT", "OK"], rq
    assert rq[1]["headers"]["Auth-Pass"] == "alice-pw"


# --------------------------------------------------------------------------
# pipelining

def test_pipelined_commands(imap_px, kind, dovecot):
    dovecot.clear("bob")
    dovecot.put_message("bob", harness.make_message("pipelined"))
    p = imap_px(kind)
    with Raw(p.port) as c:
        c.send(b"p1 CAPABILITY\r\np2 NOOP\r\np3 LOGIN bob bob-pw\r\n"
               b"p4 SELECT INBOX\r\np5 FETCH 1 (BODY.PEEK[HEADER.FIELDS "
               b"(SUBJECT)])\r\np6 LOGOUT\r\n")
        data = c.read_all(10)
    tags = [ln.split(b" ", 1)[0] for ln in data.split(b"\r\n")
            if ln[:1] == b"p"]
    assert tags == [b"p1", b"p2", b"p3", b"p4", b"p5", b"p6"], data
    assert b"p4 OK [READ-WRITE]" in data
    assert b"Subject: pipelined" in data
    assert b"* BYE" in data


def test_commands_byte_by_byte(imap_px, kind):
    """A command cut anywhere (here: into single bytes) is the same
    command: quoted strings, both kinds of literal, then the backend."""
    p = imap_px(kind)
    pw = USERS["carol"].encode()
    with Raw(p.port) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = (b'a1 NOOP\r\na2 ID ("x" "y")\r\n'
                b'a3 LOGIN {5+}\r\ncarol "%s"\r\n'
                b"a4 SELECT INBOX\r\n"
                % pw.replace(b"\\", b"\\\\").replace(b'"', b'\\"'))
        for i in range(len(data)):
            c.send(data[i:i + 1])
            time.sleep(0.002)
        lines = c.tagged("a4")
    tagged = [ln for ln in lines if ln[:1] == b"a"]
    assert [ln.split(b" ")[:2] for ln in tagged] == [
        [b"a1", b"OK"], [b"a2", b"OK"], [b"a3", b"OK"], [b"a4", b"OK"]], lines


def test_pipeline_longer_than_buffer(imap_px):
    """Pipelined commands that together exceed imap_client_buffer, one of
    them straddling the buffer's end, with literals in between."""
    p = imap_px("file", mail={"imap_client_buffer": "1k"})
    cmds = []
    for i in range(300):
        if i % 10 == 3:
            cmds.append(b"t%d ID (\"name\" {3+}\r\nabc)\r\n" % i)
        else:
            cmds.append(b"t%d NOOP\r\n" % i)
    cmds.append(b"t999 LOGIN {5+}\r\nalice {8+}\r\nalice-pw\r\n"
                b"t1000 SELECT INBOX\r\n")
    data = b"".join(cmds)
    assert len(data) > 3 * 1024
    with Raw(p.port) as c:
        c.send(data)
        lines = c.tagged("t1000", limit=1000)
    tags = [ln.split(b" ", 1)[0] for ln in lines if ln[:1] == b"t"]
    assert tags == [b"t%d" % i for i in range(300)] + [b"t999", b"t1000"]
    assert all(b" OK " in ln for ln in lines if ln[:1] == b"t"), lines


# --------------------------------------------------------------------------
# syntax errors and limits

def test_syntax_errors_bad(imap_px):
    p = imap_px("file", mail={"max_errors": 50})
    bad = [
        (b"a FOO", b"a BAD invalid command\r\n"),
        (b"a LOGIN", b"a BAD invalid command\r\n"),
        (b"a LOGIN onlyuser", b"a BAD invalid command\r\n"),
        (b"a LOGIN \"\" pw", b"a BAD invalid command\r\n"),
        (b"a LOGIN \"unterminated pw", b"a BAD invalid command\r\n"),
        (b"a LOGIN (list) pw", b"a BAD invalid command\r\n"),
        (b"a NOOP\rx", b"a BAD invalid command\r\n"),
        (b"a 123", b"a BAD invalid command\r\n"),
        (b"", b"* BAD invalid command\r\n"),
        (b"a", b"* BAD invalid command\r\n"),
        # tags: letters, digits and -._ only, 32 at most
        (b"a*b NOOP", b"* BAD invalid command\r\n"),
        (b"a+b NOOP", b"* BAD invalid command\r\n"),
        (b"a{1} NOOP", b"* BAD invalid command\r\n"),
        (b"a\"b NOOP", b"* BAD invalid command\r\n"),
        (b"a\x00b NOOP", b"* BAD invalid command\r\n"),
        (b"\xc3\xa9 NOOP", b"* BAD invalid command\r\n"),
        (b"t" * 33 + b" NOOP", b"* BAD invalid command\r\n"),
        # junk after a literal's length, and after the literal itself
        (b"a LOGIN {5}x", b"a BAD invalid command\r\n"),
    ]
    with Raw(p.port) as c:
        for cmd, want in bad:
            c.send(cmd + b"\r\n")
            assert c.readline() == want, cmd
        # a 32-character tag with every allowed character is fine
        tag = "Az09-._" + "x" * 25
        assert c.run(tag, "NOOP")[0] == tag.encode() + b" OK completed\r\n"
        # junk right after a literal's bytes
        c.send(b"j LOGIN {5}\r\n")
        assert c.readline() == b"+ OK\r\n"
        c.send(b"alicejunk alice-pw\r\n")
        assert c.readline() == b"j BAD invalid command\r\n"
        assert c.run("z", "NOOP")[0] == b"z OK completed\r\n"


@pytest.fixture(scope="module")
def tls_files():
    """One self-signed certificate, for a server under starttls only."""
    if harness.missing("openssl"):
        pytest.skip("openssl is not installed")
    d = harness.make_tmpdir("imap-cert")
    try:
        r = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
             "-days", "2", "-keyout", "key.pem", "-out", "cert.pem"],
            cwd=d, capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        yield {"ssl_certificate": os.path.join(d, "cert.pem"),
               "ssl_certificate_key": os.path.join(d, "key.pem")}
    finally:
        harness.remove_tmpdir(d)


def test_literal_of_refused_command_gets_bad(imap_px, tls_files):
    """A {n} literal of a command that will be refused gets the tagged BAD
    at once, not "+ OK" (RFC 3501 7.5): no password is invited before TLS
    under starttls only, or for LOGIN without "plain"; the client sends no
    literal then, and the next line is a new command."""
    p = imap_px("file", mail={"max_errors": 3})
    with Raw(p.port) as c:
        c.send(b"a1 XYZZY {5}\r\n")
        assert c.readline() == b"a1 BAD invalid command\r\n"
        assert c.run("a2", "NOOP")[0] == b"a2 OK completed\r\n"
        # an unknown name is still a counted error: this is the third
        c.send(b"a3 FOO bar\r\na4 XYZZY x {5}\r\n")
        assert c.readline() == b"a3 BAD invalid command\r\n"
        assert c.readline() == b"a4 BAD invalid command\r\n"
        assert c.closed_by_peer(5)
    # LOGIN without "plain" in imap_auth: refused before its literal
    p = imap_px("file", mail={"imap_auth": ["cram-md5"]})
    with Raw(p.port) as c:
        c.send(b"a1 LOGIN {5}\r\n")
        assert c.readline() == b"a1 BAD invalid command\r\n"
        c.send(b"a2 LOGIN alice {8}\r\n")
        assert c.readline() == b"a2 BAD invalid command\r\n"
        # an allowed command's literal is still asked for
        c.send(b'a3 ID ("name" {3}\r\n')
        assert c.readline() == b"+ OK\r\n"
        c.send(b"abc)\r\n")
        assert c.tagged("a3")[-1] == b"a3 OK completed\r\n"
    # starttls only: LOGIN and AUTHENTICATE before TLS
    p = imap_px("file", server=dict(tls_files, starttls="only"))
    with Raw(p.port) as c:
        c.send(b"a1 LOGIN alice {8}\r\n")
        assert c.readline() == b"a1 BAD invalid command\r\n"
        c.send(b"a2 AUTHENTICATE PLAIN {8}\r\n")
        assert c.readline() == b"a2 BAD invalid command\r\n"
        line, lines = c.run("a3", "CAPABILITY")
        assert lines[0].endswith(b" STARTTLS LOGINDISABLED\r\n"), lines
        assert line == b"a3 OK completed\r\n"


def test_max_errors(imap_px):
    p = imap_px("file", mail={"max_errors": 3})
    with Raw(p.port) as c:
        assert c.run("a", "FOO")[0] == b"a BAD invalid command\r\n"
        assert c.run("b", "BAR")[0] == b"b BAD invalid command\r\n"
        assert c.run("c", "BAZ")[0] == b"c BAD invalid command\r\n"
        assert c.closed_by_peer(5)
    assert "too many invalid commands" in p.log_text()


def test_timeout_closes_silent_client(imap_px):
    p = imap_px("file", mail={"timeout": "2s"})
    with Raw(p.port) as c:
        assert c.closed_by_peer(15)
    with Raw(p.port) as c:
        # a client that started a command and stopped counts the same
        c.send(b"a LOGIN {5}\r\n")
        assert c.readline() == b"+ OK\r\n"
        assert c.closed_by_peer(15)
    with Raw(p.port) as c:
        # a busy client that never logs in holds its worker no longer:
        # `timeout` bounds the whole time before the relay
        closed = False
        for i in range(40):
            try:
                c.send("n%d NOOP\r\n" % i)
                line = c.readline()
            except OSError:
                line = b""
            if line == b"":
                closed = True
                break
            assert line == b"n%d OK completed\r\n" % i
            time.sleep(0.25)
        assert closed
    harness.wait_for(lambda: "client timed out (110: Connection timed out)"
                     " while in auth state" in p.log_text(), 5,
                     what="the timeout in the log, in NGINX's words")


def test_client_buffer(imap_px):
    p = imap_px("file", mail={"imap_client_buffer": "1k"})
    # an over-long line: BAD, then closed (as NGINX)
    with Raw(p.port) as c:
        c.send(b"a LOGIN " + b"x" * 3000 + b" pw\r\n")
        assert c.readline() == b"a BAD invalid command\r\n"
        assert c.closed_by_peer(5)
    assert "too long command" in p.log_text()
    # a line just under the limit is parsed normally
    with Raw(p.port) as c:
        c.send(b"a LOGIN " + b"x" * 900 + b" pw\r\n")
        line = c.readline()
        assert line == b"a NO Invalid login or password\r\n", line
    # a synchronizing literal longer than the buffer: BAD before any "+",
    # the connection stays usable
    with Raw(p.port) as c:
        c.send(b"a LOGIN {5000}\r\n")
        assert c.readline() == b"a BAD invalid command\r\n"
        assert c.run("b", "NOOP")[0] == b"b OK completed\r\n"
        c.send(b"c LOGIN {99999999999999999999999999}\r\n")
        assert c.readline() == b"c BAD invalid command\r\n"
        assert c.run("d", "LOGIN alice alice-pw")[0].startswith(b"d OK")
    # a non-synchronizing one: its bytes are already coming: BAD, closed
    with Raw(p.port) as c:
        c.send(b"a LOGIN {5000+}\r\n")
        assert c.readline() == b"a BAD invalid command\r\n"
        assert c.closed_by_peer(5)


def test_too_long_sasl_answer(imap_px):
    """A SASL answer longer than the buffer is refused, and none of its
    tail is read as a command (it used to be: the rest of the line ran
    as the next command)."""
    p = imap_px("file", mail={"imap_client_buffer": "1k",
                              "imap_auth": ["plain", "login"]})
    for mech, first in (("PLAIN", b"+ \r\n"),
                        ("LOGIN", b"+ VXNlcm5hbWU6\r\n")):
        with Raw(p.port) as c:
            c.send("a AUTHENTICATE %s\r\n" % mech)
            assert c.readline() == first
            c.send(b"Q" * 1024 + b"i1 LOGOUT\r\n")
            assert c.readline() == b"a BAD invalid command\r\n"
            assert c.run("b", "NOOP")[1] == [b"b OK completed\r\n"]
            line, _ = c.run("c", "LOGIN alice alice-pw")
            assert login_ok(line, "c"), line


def test_ctl_in_user_names(imap_px, authsvc, kind):
    p = imap_px(kind, mail=dict(ALL_MECHS, max_errors=50))
    n = len(authsvc.requests())
    names = [b"al\r\nice", b"al\nice", b"al\rice", b"al\x00ice",
             b"alice\r\nAuth-User: bob"]
    with Raw(p.port) as c:
        for i, name in enumerate(names):
            tag = "l%d" % i
            c.send(b"%s LOGIN {%d+}\r\n%s pw\r\n" % (tag.encode(), len(name),
                                                     name))
            assert c.readline() == tag.encode() + b" BAD invalid command\r\n"
            tag = "p%d" % i
            c.send(b"%s AUTHENTICATE PLAIN %s\r\n"
                   % (tag.encode(), b64(b"\0" + name + b"\0pw").encode()))
            assert c.readline() == tag.encode() + b" BAD invalid command\r\n"
            tag = "g%d" % i
            c.send(b"%s AUTHENTICATE LOGIN %s\r\n"
                   % (tag.encode(), b64(name).encode()))
            assert c.readline().startswith(b"+ ")
            c.send(b64("pw").encode() + b"\r\n")
            assert c.readline() == tag.encode() + b" BAD invalid command\r\n"
        assert c.run("z", "NOOP")[0] == b"z OK completed\r\n"
    # none of them reached the auth service
    assert auth_requests_since(authsvc, n) == []
    # and every log line is one line that starts with a date
    with open(p.error_log, "rb") as f:
        raw = f.read()
    assert b"\0" not in raw and b"\r" not in raw
    for ln in raw.split(b"\n")[:-1]:
        assert re.match(rb"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[", ln), ln


def test_ctl_in_user_name_escaped_to_auth_service(imap_px, authsvc):
    """Bytes that are allowed in a user name (8-bit, %, +, space in a
    quoted string) reach the auth service escaped and come back intact."""
    p = imap_px("http")
    n = len(authsvc.requests())
    with Raw(p.port) as c:
        line, _ = c.run("a", b'LOGIN "we ird%0D%0A\xc3\xa9\x7f" "p\\"w%"')
        assert line == b"a NO Invalid login or password\r\n"
    # CR, LF and NUL are allowed in a password (a literal): escaped too
    pw = b"p\r\nAuth-User: bob\r\n\x00x"
    with Raw(p.port) as c:
        c.send(b"b LOGIN alice {%d+}\r\n%s\r\n" % (len(pw), pw))
        assert c.readline() == b"b NO Invalid login or password\r\n"
    rq = auth_requests_since(authsvc, n)
    assert len(rq) == 2
    assert rq[0]["user"] == "we ird%0D%0A\u00e9\x7f"
    assert rq[1]["user"] == "alice"
    assert rq[1]["headers"]["Auth-Pass"].upper() == \
        "P%0D%0AAUTH-USER:%20BOB%0D%0A%00X"
    for r in rq:
        for k, v in r["headers"].items():
            assert "\r" not in v and "\n" not in v and "\0" not in v


def test_password_never_logged(imap_px, kind, authsvc):
    secrets = ["Secret-One-7731", "Secret-Two-8842", "Secret-Three-9953"]
    p = imap_px(kind, mail=ALL_MECHS)
    for s in secrets:
        with Raw(p.port) as c:
            c.run("a", "LOGIN alice " + s)
    with Raw(p.port) as c:
        c.run("a", "AUTHENTICATE PLAIN " + b64("\0alice\0" + secrets[0]))
    with Raw(p.port) as c:
        c.send("a AUTHENTICATE LOGIN\r\n")
        c.readline()
        c.send(b64("alice") + "\r\n")
        c.readline()
        c.send(b64(secrets[1]) + "\r\n")
        c.tagged("a")
    # and successful ones, which go on to Dovecot
    for user in ("alice", "carol"):
        m = imaplib.IMAP4("127.0.0.1", p.port, timeout=10)
        m.login(user, USERS[user])
        m.logout()
    text = p.log_text()
    assert "[debug]" in text
    for s in secrets + [USERS["alice"], USERS["carol"]]:
        assert s not in text, s
        assert b64(s) not in text
        assert b64("\0alice\0" + s) not in text


# --------------------------------------------------------------------------
# the backend failing

def test_backend_down(imap_px, authsvc, kind):
    hold, port = closed_port()
    try:
        with users_with(authsvc, {"dave": {"pass": "dave-pw",
                                           "server": "127.0.0.1",
                                           "port": port}}):
            p = imap_px(kind, file_extra=[
                ("dave", "{PLAIN}dave-pw", "127.0.0.1:%d" % port)])
            with Raw(p.port) as c:
                c.send("a LOGIN dave dave-pw\r\n")
                assert c.read_all(10) == INTERNAL
    finally:
        hold.close()
    text = p.log_text()
    lines = log_lines(text, "upstream: 127.0.0.1:%d" % port)
    assert any("[error]" in ln and "refused" in ln.lower() for ln in lines), \
        text


@pytest.mark.parametrize("mode", ["refuse", "preauth", "garbage"])
def test_backend_misbehaves(imap_px, authsvc, kind, mode):
    fb = FakeBackend(mode)
    try:
        with users_with(authsvc, {"dave": {"pass": "dave-pw",
                                           "server": "127.0.0.1",
                                           "port": fb.port}}):
            p = imap_px(kind, file_extra=dave_at(fb))
            with Raw(p.port) as c:
                c.send("a LOGIN dave dave-pw\r\n")
                assert c.read_all(10) == INTERNAL
    finally:
        fb.stop()
    text = p.log_text()
    assert re.search(r"\[error\].*upstream sent invalid response.*"
                     r"upstream: 127\.0\.0\.1:%d" % fb.port, text), text
    if mode == "refuse":
        # logged as NGINX logs it: the answer without its tag
        assert 'upstream sent invalid response: "NO [AUTHENTICATIONFAILED]' \
            ' Backend says no." while reading response from upstream' in text
        # it was given the login in one line, and nothing after
        assert fb.received[0] == b'a LOGIN "dave" "dave-pw"\r\n'

        assert "Backend says no." in text
    else:
        # no LOGIN (and so no password) for a backend that greets wrongly
        assert all(b"dave" not in r for r in fb.received)


@pytest.mark.parametrize("password,literal_plus,sent", [
    # quotable: one line, quoted-specials escaped (RFC 3501 quoted)
    (b'q"uo\\te', False, b'b LOGIN "erin" "q\\"uo\\\\te"\r\n'),
    # 8-bit: non-synchronizing literals in one write when LITERAL+ is there
    ("p\u00e4ss".encode(), True,
     b"b LOGIN {4+}\r\nerin {5+}\r\np\xc3\xa4ss\r\n"),
    # ... else NGINX's synchronizing literals, one "+" wait each
    ("p\u00e4ss".encode(), False,
     b"b LOGIN {4}\r\nerin {5}\r\np\xc3\xa4ss\r\n"),
])
def test_backend_login_command(imap_px, password, literal_plus, sent):
    """What the backend is sent for the client's LOGIN: as few round trips
    as the credentials and the backend's greeting allow."""
    fb = FakeBackend("refuse", literal_plus=literal_plus)
    try:
        p = imap_px("file", file_extra=[
            ("erin", "{PLAIN}" + password.decode(), "127.0.0.1:%d" % fb.port)])
        with Raw(p.port) as c:
            c.send(b"b LOGIN erin {%d+}\r\n%s\r\n" % (len(password),
                                                         password))
            # the fake refuses only once it has read the whole command
            assert c.read_all(10) == INTERNAL
        assert fb.received[0] == sent
    finally:
        fb.stop()


def test_backend_refusal_passed_on(imap_px):
    fb = FakeBackend("refuse")
    try:
        p = imap_px("file", mail={"proxy_pass_error_message": True},
                    file_extra=[("dave", "{PLAIN}dave-pw",
                                 "127.0.0.1:%d" % fb.port)])
        with Raw(p.port) as c:
            c.send("x7 LOGIN dave dave-pw\r\n")
            assert c.read_all(10) == \
                b"x7 NO [AUTHENTICATIONFAILED] Backend says no.\r\n"
    finally:
        fb.stop()


# --------------------------------------------------------------------------
# the auth service failing

@pytest.mark.parametrize("how", ["down", "closed-port", "slow", "garbled",
                                 "http500"])
def test_auth_service_fails(imap_px, authsvc, how):
    mail = {"auth_http_timeout": "1s"}
    hold = None
    if how == "closed-port":
        hold, port = closed_port()
        p = imap_px(mail=mail, url="http://127.0.0.1:%d/auth" % port)
    elif how == "slow":
        p = imap_px("http", mail=mail, path="/slow?delay=4")
    else:
        p = imap_px("http", mail=mail, path="/" + how)
    try:
        with Raw(p.port) as c:
            c.send("a LOGIN alice alice-pw\r\n")
            assert c.read_all(10) == INTERNAL
    finally:
        if hold:
            hold.close()
    text = p.log_text()
    errs = [ln for ln in text.splitlines() if "[error]" in ln
            and "in http auth state" in ln]
    assert errs, text
    want = {"down": "closed the connection", "closed-port": "refused",
            "slow": "timed out", "garbled": "invalid response",
            "http500": "no auth-status"}[how]
    assert want in errs[-1].lower(), errs
    # the client's password is not in it
    assert "alice-pw" not in text


# --------------------------------------------------------------------------
# real clients: curl

@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_curl(imap_px, kind, dovecot):
    dovecot.clear("bob")
    body = b"curl body line\r\n" * 3
    dovecot.put_message("bob", harness.make_message("via curl", body))
    p = imap_px(kind)
    base = "imap://127.0.0.1:%d" % p.port
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-u",
                        "bob:" + USERS["bob"], base + "/"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"INBOX" in r.stdout
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-u",
                        "bob:" + USERS["bob"], base + "/INBOX;MAILINDEX=1"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"Subject: via curl" in r.stdout and body in r.stdout


# --------------------------------------------------------------------------
# the relay

def login_raw(port, user="alice", timeout=10.0):
    c = Raw(port, timeout=timeout)
    line, lines = c.run("L", "LOGIN %s %s" % (user, USERS[user]))
    assert login_ok(line, "L"), lines
    return c


def test_relay_append_fetch_1mb(imap_px, kind, dovecot):
    dovecot.clear("bob")
    rnd = os.urandom(768 * 1024)
    body = b"".join(base64.b64encode(rnd[i:i + 57]) + b"\r\n"
                    for i in range(0, len(rnd), 57))
    msg = harness.make_message("append 1mb", body)
    assert len(msg) > 1000000
    p = imap_px(kind)
    with login_raw(p.port, "bob") as c:
        c.send(b"A1 APPEND INBOX {%d}\r\n" % len(msg))
        assert c.readline().startswith(b"+ ")
        c.send(msg + b"\r\n")
        lines = c.tagged("A1")
        assert lines[-1].startswith(b"A1 OK"), lines
        c.run("S", "SELECT INBOX")
        c.send(b"F FETCH 1 (BODY.PEEK[])\r\n")
        head = c.readline()
        m = re.search(rb"\{(\d+)\}\r\n$", head)
        assert m, head
        n = int(m.group(1))
        while len(c.buf) < n:
            d = c.sock.recv(1 << 20)
            assert d
            c.buf += d
        got, c.buf = c.buf[:n], c.buf[n:]
        assert c.tagged("F")[-1].startswith(b"F OK")
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(msg).hexdigest()
    # and what Dovecot stored is what the client sent
    stored = dovecot.messages("bob")
    assert len(stored) == 1
    assert stored[0].replace(b"\r\n", b"\n") == msg.replace(b"\r\n", b"\n")


def test_relay_proxy_timeout(imap_px):
    p = imap_px("file", mail={"proxy_timeout": "2s"})
    with login_raw(p.port) as c:
        assert c.run("n", "NOOP")[0].startswith(b"n OK")
        assert c.closed_by_peer(15)


def test_relay_half_close(imap_px, kind):
    p = imap_px(kind)
    with login_raw(p.port) as c:
        c.send("Z LOGOUT\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        data = c.read_all(10)
        assert b"* BYE" in data and b"Z OK" in data, data
    # either EOF may reach the relay first (Dovecot closes after LOGOUT)
    line = harness.summary_line(p)
    assert re.search(r"reason=(client|upstream) closed bytes_in=10 ", line)
    # NGINX's line and context first
    assert re.search(r"proxied session done, client: 127\.0\.0\.1, server: "
                     r"127\.0\.0\.1:%d, login: \"alice\", upstream: "
                     r"127\.0\.0\.1:\d+, reason=" % p.port, line), line


def test_relay_upstream_closes_first(imap_px, kind):
    """LOGOUT: Dovecot answers and closes, postern passes the EOF on, and
    only then does the client close; every byte arrives before the EOF."""
    p = imap_px(kind)
    with login_raw(p.port) as c:
        c.send("Z LOGOUT\r\n")
        data = c.read_all(10)
        # read_all stops at the EOF: the tagged answer came before it
        assert b"* BYE" in data and data.splitlines()[-1].startswith(b"Z OK"), data
    line = harness.summary_line(p)
    assert "reason=upstream closed" in line, line


def test_relay_reset_after_half_close(imap_px):
    """A client half-closes, then resets, while the backend keeps its side
    open: the session ends at once as the client's error.  (poll() reports
    the reset on every call; a side at EOF has nothing to read that would
    find it, and proxy_timeout is a minute away.)"""
    with FakeBackend("hold") as fb:
        p = imap_px("file", mail={"proxy_timeout": "60s"},
                    file_extra=dave_at(fb))
        c = Raw(p.port)
        try:
            assert c.run("a", "LOGIN dave dave-pw")[0] == b"a OK logged in\r\n"
            c.sock.shutdown(socket.SHUT_WR)
            assert fb.eof_seen.wait(10), "the half-close was not passed on"
        finally:
            harness.close_with_reset(c.sock)
        line = harness.summary_line(p)
    # the reset after the client's FIN (Linux says EPIPE in that state)
    assert "reason=client connection error (Connection reset by peer) " \
        "bytes_in=0 " in line, line


def test_relay_answer_after_half_close(imap_px):
    """A plain half-close is passed on, and the backend's answer to it
    still reaches the client; the session ends when the backend closes."""
    with FakeBackend("eofreply") as fb:
        p = imap_px("file", file_extra=dave_at(fb))
        with Raw(p.port) as c:
            assert c.run("a", "LOGIN dave dave-pw")[0] == b"a OK logged in\r\n"
            c.send("x SOMETHING\r\n")
            assert c.readline() == b"x SOMETHING\r\n"
            c.sock.shutdown(socket.SHUT_WR)
            assert c.readline() == FakeBackend.AFTER_EOF
            fb.stop()
            assert c.read_all(10) == b""
    assert "reason=client closed bytes_in=13 " in harness.summary_line(p)


def test_logged_in_log_line(imap_px, kind, dovecot):
    p = imap_px(kind)
    with login_raw(p.port) as c:
        local = c.sock.getsockname()[1]
    # as NGINX: the line ends with the context (the socket pairs are a
    # debug line of their own)
    pat = (r'client logged in, client: 127\.0\.0\.1, server: '
           r'127\.0\.0\.1:%d, login: "alice", upstream: 127\.0\.0\.1:%d$'
           % (p.port, dovecot.imap_port))
    assert local > 0
    harness.wait_for(lambda: any(re.search(pat, ln) for ln in
                                 p.log_text().splitlines()), 5,
                     what="the logged-in line:\n" + p.log_text())
    assert re.search(r"\[info\] \d+#\d+: \*\d+ client logged in", p.log_text())


# --------------------------------------------------------------------------
# volume

def test_200_parallel_sessions(imap_px, kind, dovecot):
    dovecot.clear("alice")
    dovecot.put_message("alice", harness.make_message("parallel"))
    p = imap_px(kind, top={"worker_threads": 32, "worker_connections": 1024})
    n = 200
    start = threading.Barrier(n, timeout=60)
    errors = []
    ok = []

    def one(i):
        try:
            start.wait()
            m = imaplib.IMAP4("127.0.0.1", p.port, timeout=60)
            try:
                m.login("alice", USERS["alice"])
                typ, data = m.select("INBOX", readonly=True)
                assert typ == "OK"
                typ, data = m.fetch("1", "(BODY.PEEK[])")
                assert typ == "OK" and b"Subject: parallel" in data[0][1]
                ok.append(i)
            finally:
                m.logout()
        except Exception as e:  # noqa: BLE001 (collected for the report)
            errors.append("%d: %r" % (i, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:10]
    assert len(ok) == n


def test_20mb_message(imap_px, dovecot):
    dovecot.clear("bob")
    rnd = os.urandom(15 * 1024 * 1024)
    b = base64.b64encode(rnd)
    body = b"".join(b[i:i + 76] + b"\r\n" for i in range(0, len(b), 76))
    msg = harness.make_message("twenty mb", body)
    assert len(msg) >= 20 * 1000 * 1000
    dovecot.put_message("bob", msg)
    p = imap_px("file")
    m = imaplib.IMAP4("127.0.0.1", p.port, timeout=60)
    try:
        m.login("bob", USERS["bob"])
        m.select("INBOX", readonly=True)
        typ, data = m.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK"
        got = data[0][1]
    finally:
        m.logout()
    assert len(got) == len(msg)
    assert hashlib.sha256(got).digest() == hashlib.sha256(msg).digest()


# --------------------------------------------------------------------------
# the pool cannot be starved

def test_pool_not_starved(imap_px):
    p = imap_px("file", mail={"timeout": "6s"},
                top={"worker_threads": 8, "worker_connections": 2048})
    slow = []
    try:
        for _ in range(300):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.2", 0))
            s.settimeout(10)
            s.connect(("127.0.0.1", p.port))
            slow.append(s)
        # others keep logging in while the 300 hold on
        for i in range(8):
            m = imaplib.IMAP4("127.0.0.1", p.port, timeout=10)
            try:
                assert m.login("alice", USERS["alice"])[0] == "OK", i
                assert m.noop()[0] == "OK"
            finally:
                m.logout()
        # and every slow one is closed after `timeout` (greeted or not)
        deadline = time.monotonic() + 40
        for s in slow:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            data = b""
            try:
                while True:
                    d = s.recv(4096)
                    if not d:
                        break
                    data += d
            except ConnectionResetError:
                pass
            assert data in (b"", b"* OK IMAP4 ready\r\n"), data
    finally:
        for s in slow:
            s.close()
    assert p.alive()


def test_past_worker_connections_client_told_busy(imap_px):
    # one worker, room for two connections: a third gets the protocol's
    # temporary error at once instead of a silent close or a hang
    p = imap_px("file", top={"worker_threads": 1, "worker_connections": 2})

    def attempt():
        """True when the third connection was told busy; False when an
        earlier connection (the harness's readiness probe, or one from the
        previous attempt) still counted, so the count started above zero."""
        held = []
        try:
            # the first is served: its greeting proves the worker holds it
            held.append(socket.create_connection(("127.0.0.1", p.port),
                                                 timeout=10))
            if not held[0].recv(100).startswith(b"* OK"):
                return False
            # the second waits in the queue behind it
            held.append(socket.create_connection(("127.0.0.1", p.port),
                                                 timeout=10))
            third = socket.create_connection(("127.0.0.1", p.port),
                                             timeout=10)
            try:
                data = third.recv(100)
                if data != b"* BYE server busy\r\n":
                    return False
                assert third.recv(100) == b""
            finally:
                third.close()
            # the acceptor answers in order: had the second been refused
            # too, its reply would be waiting by now; what it has is the
            # greeting the acceptor sends as it queues a plain connection
            held[1].setblocking(False)
            try:
                early = held[1].recv(100)
            except BlockingIOError:
                early = None
            return early == b"* OK IMAP4 ready\r\n"
        finally:
            for s in held:
                s.close()

    for _ in range(10):
        if attempt():
            break
        time.sleep(0.5)
    else:
        pytest.fail("the third connection was never told busy")
    assert "worker_connections are not enough" in p.log_text()
    assert p.alive()


# --------------------------------------------------------------------------
# more of the backend dialogue

def test_backend_untagged_capability_and_binary_relay(imap_px, authsvc,
                                                       kind):
    fb = FakeBackend("ok")
    try:
        with users_with(authsvc, {"dave": {"pass": "dave-pw",
                                           "server": "127.0.0.1",
                                           "port": fb.port}}):
            p = imap_px(kind, file_extra=dave_at(fb))
            with Raw(p.port) as c:
                line, lines = c.run("a", "LOGIN dave dave-pw")
                assert lines == [b"* CAPABILITY IMAP4rev1 FAKE\r\n",
                                 b"a OK logged in\r\n"]
                # every byte value, both ways, unchanged and in order
                blob = bytes(range(256)) * 64 + os.urandom(100000)
                c.send(blob)
                got = b""
                c.sock.settimeout(10)
                while len(got) < len(blob):
                    d = c.sock.recv(65536)
                    assert d, len(got)
                    got += d
                assert got == blob
    finally:
        fb.stop()
    assert fb.received[0].endswith(blob)


def test_backend_silent(imap_px):
    fb = FakeBackend("silent")
    try:
        p = imap_px("file", mail={"timeout": "2s"}, file_extra=dave_at(fb))
        with Raw(p.port) as c:
            c.send("a LOGIN dave dave-pw\r\n")
            assert c.read_all(15) == INTERNAL
    finally:
        fb.stop()
    # NGINX's words
    assert re.search(r"\[info\] .*upstream timed out \(110: Connection timed "
                     r"out\) while reading response from upstream, .*"
                     r"upstream: 127\.0\.0\.1:%d" % fb.port, p.log_text()), \
        p.log_text()


def test_backend_reset(imap_px):
    """A backend that resets the connection instead of answering LOGIN:
    the client gets the internal error, the log the system's reason in
    NGINX's words, at error."""
    fb = FakeBackend("reset")
    try:
        p = imap_px("file", file_extra=dave_at(fb))
        with Raw(p.port) as c:
            c.send("a LOGIN dave dave-pw\r\n")
            assert c.read_all(15) == INTERNAL
    finally:
        fb.stop()
    harness.wait_for(lambda: "recv() failed" in p.log_text(), 10,
                     what="the backend's reset in the log")
    assert re.search(r"\[error\] .*recv\(\) failed \(104: Connection reset "
                     r"by peer\) while reading response from upstream, .*"
                     r"upstream: 127\.0\.0\.1:%d" % fb.port, p.log_text()), \
        p.log_text()


def test_client_reset_in_auth_state(imap_px):
    """A client that resets its connection halfway through a command is
    logged as NGINX logs it, at info."""
    p = imap_px("file")
    c = Raw(p.port)
    try:
        c.send("a LOGIN dave")
    finally:
        harness.close_with_reset(c.sock)
    harness.wait_for(lambda: "recv() failed" in p.log_text(), 10,
                     what="the client's reset in the log")
    assert re.search(r"\[info\] .*recv\(\) failed \(104: Connection reset "
                     r"by peer\) while in auth state, client: 127\.0\.0\.1",
                     p.log_text()), p.log_text()


def test_auth_server_host_name_and_backend_user(imap_px, authsvc, dovecot):
    """Auth-Server may be a host name; Auth-User / Auth-Pass replace the
    client's credentials for the backend login."""
    with users_with(authsvc, {"eve": {"pass": "eve-pw",
                                      "server": "localhost",
                                      "port": dovecot.imap_port,
                                      "backend_user": "carol",
                                      "backend_pass": USERS["carol"]}}):
        p = imap_px("http")
        with Raw(p.port) as c:
            line, _ = c.run("a", "LOGIN eve eve-pw")
            assert login_ok(line, "a"), line
            selected(c)
    assert re.search(r'client logged in, .*login: "eve", upstream: '
                     r"(localhost|127\.0\.0\.1|\[::1\]):%d"
                     % dovecot.imap_port, p.log_text()), p.log_text()
    assert re.search(r"Login: user=<carol>.*method=PLAIN",
                     harness.tail(dovecot.log, 2000))


def test_reload_shutdown_timeout_ends_old_sessions_only(imap_px):
    """After a reload, a relayed session of the old configuration ends once
    shutdown_timeout passes; one begun under the new configuration goes on."""
    fb = FakeBackend("ok")
    try:
        p = imap_px("file", top={"shutdown_timeout": "1s"}, file_extra=dave_at(fb))
        with Raw(p.port) as old, Raw(p.port, source="127.0.0.2") as mid:
            assert old.run("a", "LOGIN dave dave-pw")[0].startswith(b"a OK")
            p.write_conf()
            p.kill(signal.SIGHUP)
            harness.wait_for(lambda: "reconfigured" in p.log_text(), 10,
                             what="the reload")
            # begun before the reload, relayed only after it: still old
            assert mid.run("m", "LOGIN dave dave-pw")[0].startswith(b"m OK")
            mid.sock.settimeout(10)
            while mid.sock.recv(4096):
                pass
            with Raw(p.port) as new:
                assert new.run("b", "LOGIN dave dave-pw")[0].startswith(
                    b"b OK")
                # the old pair is ended by the relay within shutdown_timeout
                old.sock.settimeout(10)
                while old.sock.recv(4096):
                    pass
                # the new one still relays (the fake backend echoes)
                new.send(b"still here\r\n")
                new.sock.settimeout(5)
                assert b"still here" in new.sock.recv(4096)
    finally:
        fb.stop()
    assert "reason=shutdown" in p.log_text()


def test_reload_without_shutdown_timeout_spares_new_sessions(imap_px):
    """A reload with shutdown_timeout, then one without it: the deadline
    was meant for the configurations before the first reload, and a session
    begun under the last one goes on past it."""
    fb = FakeBackend("ok")
    try:
        p = imap_px("file", top={"shutdown_timeout": "1s"}, file_extra=dave_at(fb))
        p.kill(signal.SIGHUP)
        harness.wait_for(lambda: p.log_text().count("reconfigured") == 1,
                         10, what="the first reload")
        first = time.monotonic()
        del p.top["shutdown_timeout"]
        p.write_conf()
        p.kill(signal.SIGHUP)
        harness.wait_for(lambda: p.log_text().count("reconfigured") == 2,
                         10, what="the second reload")
        # past the first reload's deadline before the session begins
        time.sleep(max(0.0, first + 1.5 - time.monotonic()))
        with Raw(p.port) as new:
            assert new.run("b", "LOGIN dave dave-pw")[0].startswith(b"b OK")
            new.send(b"still here\r\n")
            new.sock.settimeout(5)
            assert b"still here" in new.sock.recv(4096)
    finally:
        fb.stop()
    assert "reason=shutdown" not in p.log_text()
