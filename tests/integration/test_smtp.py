"""SMTP through postern with real clients (smtplib, curl smtp://, swaks) to
the private Postfix, which delivers over LMTP to the private Dovecot; the
mail is then read back through postern's IMAP and compared byte for byte,
and Postfix's log must show what XCLIENT told it (the login, the client's
address).  Protocol details (greeting, EHLO, AUTH mechanisms, smtp_auth
none, greeting delay, pipelining, RSET/NOOP/QUIT, max_errors,
smtp_client_buffer) are checked with raw sockets where the exact bytes
matter; proxy_smtp_auth and XCLIENT attributes against a recording fake
backend (smtp_util.FakeSMTP)."""

import base64
import hashlib
import hmac
import os
import re
import smtplib
import subprocess
import time

import pytest

import harness
import smtp_util
from smtp_util import ehlo_auth_plain, read_reply

NAME = "proxy.example.test"
PW = harness.USERS


@pytest.fixture(scope="module")
def env(dovecot, postfix, authsvc):
    """The auth service sends alice and bob to Postfix (SMTP) and Dovecot
    (IMAP, for reading the mail back)."""
    users = harness.authsvc_users(dovecot, postfix)
    authsvc.write_users(users)
    return {"dovecot": dovecot, "postfix": postfix, "authsvc": authsvc}


def start(postern, env, smtp=None, mail=None, auth=None):
    """postern with an SMTP server (first port) and an IMAP server."""
    s = {"protocol": "smtp"}
    s.update(smtp or {})
    m = {"server_name": NAME}
    m.update(mail or {})
    return postern([s, {"protocol": "imap"}], mail=m,
                   auth=auth or env["authsvc"].url)


def queue_id(reply_text):
    m = re.search(rb"queued as ([0-9A-F]+)", reply_text)
    assert m, reply_text
    return m.group(1).decode()


def wait_log(postfix, pattern, timeout=15):
    """The first Postfix log line matching pattern (waits for it)."""
    def find():
        for ln in postfix.log_text().splitlines():
            if re.search(pattern, ln):
                return ln
        return None
    return harness.wait_for(find, timeout, what="maillog: %s" % pattern)


def read_back(p, env, user, msg, timeout=30):
    """Wait for msg in user's INBOX, read it through postern's IMAP and
    check it is msg with only trace headers in front; returns it."""
    mid = re.search(rb"Message-ID: (<[^>]+>)", msg).group(1)

    def arrived():
        for m in env["dovecot"].messages(user):
            if mid in m:
                return True
        return False
    harness.wait_for(arrived, timeout, what="delivery of %r" % mid)
    got = smtp_util.imap_fetch_all(p.ports[1], user, PW[user],
                                   mid.decode())
    assert len(got) == 1, got
    assert smtp_util.delivered_as_sent(got[0], msg), got[0][:2000]
    return got[0]


def smtplib_send(port, user, msg, rcpt="bob@example.test", source=None,
                 mechanism=None, initial_response_ok=True):
    """Log in with smtplib and send msg; the DATA reply's text."""
    with smtplib.SMTP("127.0.0.1", port, timeout=20,
                      source_address=(source, 0) if source else None) as s:
        s.ehlo("client.example")
        if mechanism is None:
            s.login(user, PW[user], initial_response_ok=initial_response_ok)
        else:
            s.user, s.password = user, PW[user]
            code, resp = s.auth(mechanism,
                                getattr(s, "auth_" + mechanism.lower()
                                        .replace("-", "_")),
                                initial_response_ok=initial_response_ok)
            assert code == 235, resp
        code, _ = s.mail("%s@example.test" % user)
        assert code == 250
        code, _ = s.rcpt(rcpt)
        assert code == 250
        code, text = s.data(msg)
        assert code == 250, text
    return text


# ---------------------------------------------------------------------------
# greeting and EHLO

def test_greeting_ehlo_helo(postern, env):
    p = start(postern, env, smtp={
        "smtp_capabilities": ["PIPELINING", "SIZE 10485760", "8BITMIME"],
        "smtp_auth": ["plain", "login", "cram-md5"]})
    with harness.LineClient(p.port) as c:
        assert c.readline() == b"220 %s ESMTP ready\r\n" % NAME.encode()
        c.send("EHLO client.example\r\n")
        assert read_reply(c) == (
            b"250-" + NAME.encode() + b"\r\n"
            b"250-PIPELINING\r\n250-SIZE 10485760\r\n250-8BITMIME\r\n"
            b"250 AUTH PLAIN LOGIN CRAM-MD5\r\n")
        assert c.cmd("HELO client.example") == \
            b"250 " + NAME.encode() + b"\r\n"
        assert c.cmd("QUIT") == b"221 2.0.0 Bye\r\n"
        assert c.closed_by_peer()


def test_ehlo_default_auth_and_no_starttls(postern, env):
    """Defaults: no capabilities, AUTH PLAIN LOGIN; no STARTTLS without
    TLS configured."""
    p = start(postern, env)
    with harness.LineClient(p.port) as c:
        c.readline()
        c.send("EHLO x\r\n")
        r = read_reply(c)
        assert r == b"250-" + NAME.encode() + b"\r\n250 AUTH PLAIN LOGIN\r\n"
        assert b"STARTTLS" not in r
        assert c.cmd("STARTTLS") == b"500 5.5.1 Invalid command\r\n"


# ---------------------------------------------------------------------------
# every mechanism, end to end: Postfix gets the login through XCLIENT

@pytest.mark.parametrize("mech,ir", [
    ("PLAIN", True), ("PLAIN", False), ("LOGIN", True), ("LOGIN", False),
    ("CRAM-MD5", False)])
def test_auth_mechanisms_deliver(postern, env, mech, ir):
    p = start(postern, env, smtp={
        "smtp_auth": ["plain", "login", "cram-md5"]})
    msg = harness.make_message("mech %s %s" % (mech, ir),
                               to="bob@example.test")
    text = smtplib_send(p.port, "alice", msg, mechanism=mech,
                        initial_response_ok=ir, source="127.0.0.2")
    qid = queue_id(text)
    line = wait_log(env["postfix"], r"smtpd\[\d+\]: %s: client=" % qid)
    # XCLIENT ADDR and LOGIN arrived
    assert "client=unknown[127.0.0.2]" in line, line
    assert "sasl_username=alice" in line, line
    got = read_back(p, env, "bob", msg)
    # the client's EHLO, sent again after XCLIENT, is the name Postfix saw
    assert b"Received: from client.example (unknown [127.0.0.2])" in got
    assert 'login: "alice"' in p.log_text()


def test_auth_plain_raw_exchange(postern, env):
    """The bytes of AUTH PLAIN without initial response; "*" cancels."""
    p = start(postern, env)
    with harness.LineClient(p.port) as c:
        c.readline()
        c.send("EHLO x\r\n")
        read_reply(c)
        assert c.cmd("AUTH PLAIN") == b"334 \r\n"
        assert c.cmd("*") == b"501 5.7.0 Authentication cancelled\r\n"
        assert c.cmd("AUTH LOGIN") == b"334 VXNlcm5hbWU6\r\n"
        assert c.cmd(base64.b64encode(b"alice").decode()) == \
            b"334 UGFzc3dvcmQ6\r\n"
        assert c.cmd(base64.b64encode(b"alice-pw").decode()) == \
            b"235 2.0.0 OK\r\n"
        # now the pair is relayed: Postfix answers
        assert c.cmd("NOOP").startswith(b"250 2.0.0 Ok")


def test_cram_md5_raw(postern, env):
    p = start(postern, env, smtp={"smtp_auth": ["cram-md5"]})
    with harness.LineClient(p.port) as c:
        c.readline()
        c.send("EHLO x\r\n")
        assert read_reply(c).endswith(b"250 AUTH CRAM-MD5\r\n")
        line = c.cmd("AUTH CRAM-MD5")
        assert line.startswith(b"334 ")
        salt = base64.b64decode(line[4:].strip())
        assert re.match(rb"^<[0-9]+\.[0-9]+@" + NAME.encode() + rb">$", salt)
        digest = hmac.new(b"bob-pw", salt, hashlib.md5).hexdigest()
        c.send(base64.b64encode(b"bob " + digest.encode()) + b"\r\n")
        assert c.readline() == b"235 2.0.0 OK\r\n"
    req = env["authsvc"].requests()[-1]
    assert req["headers"]["Auth-Method"] == "cram-md5"
    assert req["headers"]["Auth-Salt"] == salt.decode()


def test_wrong_password(postern, env):
    p = start(postern, env)
    with harness.LineClient(p.port) as c:
        c.readline()
        assert ehlo_auth_plain(c, "alice", "wrong") == \
            b"535 5.7.0 Invalid login or password\r\n"
        # no Auth-Wait: the session ends, as in NGINX
        assert c.closed_by_peer()
    assert "client login failed" in p.log_text()
    assert "wrong" not in p.log_text()


def test_wrong_password_error_code(postern, env):
    """The service's Auth-Error-Code and message reach the client."""
    p = start(postern, env, auth=env["authsvc"].url.replace(
        "/auth", "/error-code"))
    with harness.LineClient(p.port) as c:
        c.readline()
        assert ehlo_auth_plain(c, "alice", "alice-pw") == \
            b"535 5.7.8 Authentication failed\r\n"
        assert c.closed_by_peer()


def test_auth_wait_allows_retry(postern, env):
    p = start(postern, env, auth=env["authsvc"].url.replace("/auth", "/wait"))
    with harness.LineClient(p.port) as c:
        c.readline()
        assert ehlo_auth_plain(c, "alice", "alice-pw").startswith(b"535 ")
        # Auth-Wait: the client may try again in the same session
        ir = base64.b64encode(b"\0alice\0alice-pw").decode()
        assert c.cmd("AUTH PLAIN " + ir).startswith(b"535 ")


# ---------------------------------------------------------------------------
# real clients: curl and swaks

def test_curl_smtp(postern, env, tmp_path):
    if harness.missing("curl"):
        pytest.skip("curl not installed")
    p = start(postern, env)
    msg = harness.make_message("curl smtp", to="bob@example.test")
    f = tmp_path / "msg"
    f.write_bytes(msg)
    r = subprocess.run(
        ["curl", "-sS", "--max-time", "30",
         "smtp://127.0.0.1:%d/client.example" % p.port,
         "--user", "alice:alice-pw", "--mail-from", "alice@example.test",
         "--mail-rcpt", "bob@example.test", "--upload-file", str(f)],
        capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    read_back(p, env, "bob", msg)
    wait_log(env["postfix"], r"client=unknown\[127\.0\.0\.1\], "
             r"sasl_method=XCLIENT, sasl_username=alice")


@pytest.mark.parametrize("auth", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks(postern, env, tmp_path, auth):
    if harness.missing("swaks"):
        pytest.skip("swaks not installed")
    p = start(postern, env, smtp={
        "smtp_auth": ["plain", "login", "cram-md5"],
        "smtp_capabilities": ["PIPELINING", "8BITMIME"]})
    msg = harness.make_message("swaks %s" % auth, to="bob@example.test",
                               sender="bob@example.test")
    f = tmp_path / "msg"
    # swaks adds a line end to --data @file itself (real-servers.md)
    f.write_bytes(msg[:-2])
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(p.port),
         "--helo", "client.example", "--auth", auth, "--auth-user", "bob",
         "--auth-password", PW["bob"], "--from", "bob@example.test",
         "--to", "bob@example.test", "--data", "@" + str(f),
         "--pipeline", "--timeout", "20"],
        capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    read_back(p, env, "bob", msg)
    qid = re.search(rb"queued as ([0-9A-F]+)", r.stdout).group(1).decode()
    line = wait_log(env["postfix"], r"%s: client=" % qid)
    assert "sasl_username=bob" in line


# ---------------------------------------------------------------------------
# smtp_auth none: the envelope goes to the auth service

def with_imap(decide, env):
    """decide for SMTP; IMAP logins (reading the mail back) to Dovecot."""
    def both(h):
        if h.get("Auth-Protocol") == "imap":
            user = smtp_util.unescape(h["Auth-User"])
            if PW.get(user) != smtp_util.unescape(h["Auth-Pass"]):
                return [("Auth-Status", "Invalid login or password")]
            return [("Auth-Status", "OK"), ("Auth-Server", "127.0.0.1"),
                    ("Auth-Port", str(env["dovecot"].imap_port))]
        return decide(h)
    return both


def none_decide(headers):
    to = smtp_util.unescape(headers.get("Auth-SMTP-To", ""))
    if "nobody@" in to:
        return [("Auth-Status", "User unknown here"),
                ("Auth-Error-Code", "550 5.1.1"), ("Auth-Wait", "1")]
    if "gone@" in to:
        return [("Auth-Status", "Go away")]
    if "zero@" in to:
        return [("Auth-Status", "Not now"), ("Auth-Wait", "0")]
    return [("Auth-Status", "OK"), ("Auth-Server", "127.0.0.1"),
            ("Auth-Port", str(none_decide.port))]


def test_smtp_auth_none(postern, env, auth_stub):
    none_decide.port = env["postfix"].port
    stub = auth_stub(with_imap(none_decide, env))
    p = start(postern, env, smtp={"smtp_auth": ["none"],
                                  "smtp_capabilities": ["PIPELINING"]},
              auth=stub.url)
    msg = harness.make_message("auth none", sender="carol@example.test",
                               to="bob@example.test")
    with harness.LineClient(p.port, timeout=20) as c:
        c.readline()
        c.send("EHLO client.example\r\n")
        r = read_reply(c)
        assert b"AUTH" not in r
        assert c.cmd("RCPT TO:<bob@example.test>") == \
            b"503 5.5.1 Bad sequence of commands\r\n"
        assert c.cmd("MAIL FROM:<carol@example.test>") == \
            b"250 2.0.0 OK\r\n"
        # refused, with the service's code; Auth-Wait keeps the session
        assert c.cmd("RCPT TO:<nobody@example.test>") == \
            b"550 5.1.1 User unknown here\r\n"
        # the MAIL FROM stands; this recipient is taken, by Postfix now
        assert c.cmd("RCPT TO:<bob@example.test>").startswith(b"250 2.1.5")
        assert c.cmd("DATA").startswith(b"354 ")
        c.send(msg + b".\r\n")
        r = c.readline()
        assert r.startswith(b"250 "), r
        qid = queue_id(r)
        assert c.cmd("QUIT").startswith(b"221 ")
    read_back(p, env, "bob", msg)
    line = wait_log(env["postfix"], r"%s: client=" % qid)
    assert "sasl_username" not in line          # no login to pass on
    line = wait_log(env["postfix"], r"%s: from=<carol@example.test>" % qid)

    reqs = [h for h in stub.requests if h["Auth-Protocol"] == "smtp"]
    assert len(reqs) == 2
    for h in reqs:
        assert h["Auth-Method"] == "none"
        assert h["Auth-Protocol"] == "smtp"
        assert h["Auth-User"] == "" and h["Auth-Pass"] == ""
        assert h["Auth-SMTP-Helo"] == "client.example"
        assert h["Auth-SMTP-From"] == "MAIL FROM:<carol@example.test>"
        assert h["Client-IP"] == "127.0.0.1"
    assert reqs[0]["Auth-SMTP-To"] == "RCPT TO:<nobody@example.test>"
    assert reqs[1]["Auth-SMTP-To"] == "RCPT TO:<bob@example.test>"


def test_smtp_auth_none_refused_closes(postern, env, auth_stub):
    none_decide.port = env["postfix"].port
    stub = auth_stub(with_imap(none_decide, env))
    p = start(postern, env, smtp={"smtp_auth": ["none"]}, auth=stub.url)
    with harness.LineClient(p.port) as c:
        c.readline()
        c.cmd("HELO client.example")
        c.cmd("MAIL FROM:<>")
        assert c.cmd("RCPT TO:<gone@example.test>") == b"535 5.7.0 Go away\r\n"
        assert c.closed_by_peer()
    assert stub.requests[0]["Auth-SMTP-From"] == "MAIL FROM:<>"


def test_smtp_auth_wait_zero_closes(postern, env, auth_stub):
    """As NGINX: only a positive Auth-Wait lets the client try again."""
    none_decide.port = env["postfix"].port
    stub = auth_stub(with_imap(none_decide, env))
    p = start(postern, env, smtp={"smtp_auth": ["none"]}, auth=stub.url)
    with harness.LineClient(p.port) as c:
        c.readline()
        c.cmd("HELO client.example")
        c.cmd("MAIL FROM:<>")
        assert c.cmd("RCPT TO:<zero@example.test>").endswith(b" Not now\r\n")
        assert c.closed_by_peer()


def test_smtp_auth_none_swaks_authsvc(postern, env):
    """swaks without AUTH, the auth service's "*" entry naming Postfix."""
    if harness.missing("swaks"):
        pytest.skip("swaks not installed")
    svc = env["authsvc"]
    users = dict(svc.users)
    users["*"] = {"server": "127.0.0.1", "port": env["postfix"].port}
    svc.write_users(users)
    p = start(postern, env, smtp={"smtp_auth": ["none"]})
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(p.port),
         "--helo", "client.example", "--from", "carol@example.test",
         "--to", "alice@example.test", "--header", "Subject: swaks none",
         "--timeout", "20"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    env["dovecot"].wait_messages("alice", 1)
    h = svc.requests()[-1]["headers"]
    assert h["Auth-Method"] == "none"
    assert h["Auth-SMTP-To"] == "RCPT TO:<alice@example.test>"


# ---------------------------------------------------------------------------
# proxy_smtp_auth and XCLIENT against a recording fake backend


def test_proxy_smtp_auth(postern, env, auth_stub, fake_smtp):
    fake = fake_smtp(ehlo=["PIPELINING", "AUTH PLAIN LOGIN"],
                     auth_ok=("alice@backend", "backend-pw"))

    def decide(h):
        user = smtp_util.unescape(h["Auth-User"])
        if user == "alice":
            return [("Auth-Status", "OK"), ("Auth-Server", "127.0.0.1"),
                    ("Auth-Port", str(fake.port)),
                    ("Auth-User", "alice@backend"),
                    ("Auth-Pass", "backend-pw")]
        return [("Auth-Status", "OK"), ("Auth-Server", "127.0.0.1"),
                ("Auth-Port", str(fake.port))]
    stub = auth_stub(decide)
    p = start(postern, env, smtp={"proxy_smtp_auth": True, "xclient": False,
                                  "smtp_auth": ["plain", "cram-md5"]},
              auth=stub.url)
    with smtplib.SMTP("127.0.0.1", p.port, timeout=10) as s:
        s.ehlo("client.example")
        s.login("alice", "alice-pw")
        s.sendmail("alice@example.test", ["x@example.test"], b"Subject: a\r\n"
                   b"\r\nbody\r\n")
    fake.wait_sessions(1)
    harness.wait_for(lambda: fake.sessions[0]["data"], 10, what="DATA")
    lines = fake.sessions[0]["lines"]
    want = base64.b64encode(b"\0alice@backend\0backend-pw")
    assert lines[0] == b"EHLO " + NAME.encode() + b"\r\n"
    assert lines[1] == b"AUTH PLAIN " + want + b"\r\n"
    assert not any(ln.startswith(b"XCLIENT") for ln in lines)
    assert lines[2].upper().startswith(b"MAIL FROM:")
    assert fake.sessions[0]["data"][0] == b"Subject: a\r\n\r\nbody\r\n.\r\n"
    assert "backend-pw" not in p.log_text()

    # the backend refuses: the client is not told 235
    with harness.LineClient(p.port) as c:
        c.readline()
        assert ehlo_auth_plain(c, "bob", "bob-pw") == \
            b"451 4.3.2 Internal server error\r\n"
        assert c.closed_by_peer()
    assert re.search(r'upstream sent invalid response: "535 5.7.8 Bad '
                     r'credentials" while reading response from upstream',
                     p.log_text())

    # CRAM-MD5 and no Auth-Pass from the service: no password to send
    with harness.LineClient(p.port) as c:
        c.readline()
        c.send("EHLO x\r\n")
        read_reply(c)
        salt = base64.b64decode(c.cmd("AUTH CRAM-MD5")[4:])
        digest = hmac.new(b"bob-pw", salt, hashlib.md5).hexdigest()
        c.send(base64.b64encode(b"bob " + digest.encode()) + b"\r\n")
        assert c.readline() == b"451 4.3.2 Internal server error\r\n"
    assert "no password available while sending AUTH" in p.log_text()


def test_proxy_smtp_auth_to_postfix_without_sasl(postern, env):
    """Postfix here offers no AUTH: postern says 451, not 235."""
    p = start(postern, env, smtp={"proxy_smtp_auth": True, "xclient": False})
    with harness.LineClient(p.port) as c:
        c.readline()
        assert ehlo_auth_plain(c, "alice", "alice-pw") == \
            b"451 4.3.2 Internal server error\r\n"


def test_xclient_attributes(postern, env, auth_stub, fake_smtp):
    """XCLIENT carries what the backend offers, xtext-encoded, then the
    client's own EHLO."""
    fake = fake_smtp(ehlo=["XCLIENT NAME ADDR LOGIN HELO", "PIPELINING"])
    stub = auth_stub(lambda h: [("Auth-Status", "OK"),
                                ("Auth-Server", "127.0.0.1"),
                                ("Auth-Port", str(fake.port)),
                                ("Auth-User", "a+b=c@x")])
    p = start(postern, env, auth=stub.url)
    with harness.LineClient(p.port) as c:
        c.readline()
        c.send("EHLO client.example\r\n")
        read_reply(c)
        ir = base64.b64encode(b"\0alice\0alice-pw").decode()
        assert c.cmd("AUTH PLAIN " + ir) == b"235 2.0.0 OK\r\n"
    fake.wait_sessions(1)
    harness.wait_for(lambda: len(fake.sessions[0]["lines"]) >= 3, 10,
                     what="three lines at the backend")
    lines = fake.sessions[0]["lines"]
    assert lines[0] == b"EHLO " + NAME.encode() + b"\r\n"
    assert lines[1] == (b"XCLIENT ADDR=127.0.0.1 LOGIN=a+2Bb+3Dc@x "
                        b"NAME=[UNAVAILABLE]\r\n"), lines
    assert lines[2] == b"EHLO client.example\r\n"

    # a backend offering only ADDR gets only ADDR
    fake2 = fake_smtp(ehlo=["XCLIENT ADDR"])
    stub2 = auth_stub(lambda h: [("Auth-Status", "OK"),
                                 ("Auth-Server", "127.0.0.1"),
                                 ("Auth-Port", str(fake2.port))])
    p2 = start(postern, env, auth=stub2.url)
    with harness.LineClient(p2.port) as c:
        c.readline()
        c.cmd("HELO old.example")
        ir = base64.b64encode(b"\0alice\0alice-pw").decode()
        assert c.cmd("AUTH PLAIN " + ir) == b"235 2.0.0 OK\r\n"
    fake2.wait_sessions(1)
    harness.wait_for(lambda: len(fake2.sessions[0]["lines"]) >= 3, 10,
                     what="three lines at the backend")
    lines = fake2.sessions[0]["lines"]
    assert lines[1] == b"XCLIENT ADDR=127.0.0.1\r\n"
    assert lines[2] == b"HELO old.example\r\n"


def plain_login(port, user="alice", helo="client.example"):
    """EHLO and AUTH PLAIN as user: postern's answer."""
    with harness.LineClient(port) as c:
        c.readline()
        c.send("EHLO %s\r\n" % helo)
        read_reply(c)
        ir = base64.b64encode(b"\0%s\0%s-pw" % (user.encode(),
                                                 user.encode())).decode()
        return c.cmd("AUTH PLAIN " + ir)


def backend_lines(fake, index, n):
    """The first n lines of the backend's session index."""
    fake.wait_sessions(index + 1)
    harness.wait_for(lambda: len(fake.sessions[index]["lines"]) >= n, 10,
                     what="%d lines at the backend" % n)
    return fake.sessions[index]["lines"][:n]


def test_xclient_after_greeting_once_known(postern, env, auth_stub,
                                           fake_smtp):
    """NGINX sends EHLO before XCLIENT on every login, only to learn that
    the backend takes XCLIENT; postern learns it once (for a minute) and
    then sends XCLIENT right after the greeting: one round trip fewer."""
    fake = fake_smtp(ehlo=["XCLIENT ADDR LOGIN NAME", "PIPELINING"])
    stub = auth_stub(lambda h: [("Auth-Status", "OK"),
                                ("Auth-Server", "127.0.0.1"),
                                ("Auth-Port", str(fake.port))])
    p = start(postern, env, auth=stub.url)
    xclient = b"XCLIENT ADDR=127.0.0.1 LOGIN=alice NAME=[UNAVAILABLE]\r\n"
    assert plain_login(p.port) == b"235 2.0.0 OK\r\n"
    assert backend_lines(fake, 0, 3) == [
        b"EHLO " + NAME.encode() + b"\r\n", xclient,
        b"EHLO client.example\r\n"]
    for i in (1, 2):
        assert plain_login(p.port, helo="c%d.example" % i) == \
            b"235 2.0.0 OK\r\n"
        assert backend_lines(fake, i, 2) == [
            xclient, b"EHLO c%d.example\r\n" % i]
    assert "refused XCLIENT" not in p.log_text()


def test_xclient_refused_before_ehlo(postern, env, auth_stub, fake_smtp):
    """A backend that wants EHLO before XCLIENT refuses the early one: that
    login goes the long way, and so do the next ones, for a minute."""
    fake = fake_smtp(ehlo=["XCLIENT ADDR", "PIPELINING"],
                     xclient_needs_ehlo=True)
    stub = auth_stub(lambda h: [("Auth-Status", "OK"),
                                ("Auth-Server", "127.0.0.1"),
                                ("Auth-Port", str(fake.port))])
    p = start(postern, env, auth=stub.url)
    ehlo = b"EHLO " + NAME.encode() + b"\r\n"
    xclient = b"XCLIENT ADDR=127.0.0.1\r\n"
    assert plain_login(p.port) == b"235 2.0.0 OK\r\n"
    assert backend_lines(fake, 0, 3) == [ehlo, xclient,
                                         b"EHLO client.example\r\n"]
    assert plain_login(p.port) == b"235 2.0.0 OK\r\n"
    assert backend_lines(fake, 1, 4) == [xclient, ehlo, xclient,
                                         b"EHLO client.example\r\n"]
    assert re.search(r'upstream refused XCLIENT before EHLO: "503 5\.5\.1 '
                     r'Error: send HELO/EHLO first", sending EHLO first '
                     r'while reading response from upstream', p.log_text()), \
        p.logs()
    assert plain_login(p.port) == b"235 2.0.0 OK\r\n"
    assert backend_lines(fake, 2, 3) == [ehlo, xclient,
                                         b"EHLO client.example\r\n"]


def test_xclient_after_ehlo_behind_proxy_protocol(postern, env, auth_stub,
                                                  fake_smtp):
    """With proxy_protocol the backend sees each client's own address and
    may judge XCLIENT by it: what one login's EHLO said is not used for the
    next, which asks again."""
    fake = fake_smtp(ehlo=["XCLIENT ADDR", "PIPELINING"], expect_proxy=True)
    stub = auth_stub(lambda h: [("Auth-Status", "OK"),
                                ("Auth-Server", "127.0.0.1"),
                                ("Auth-Port", str(fake.port))])
    p = start(postern, env, smtp={"proxy_protocol": True}, auth=stub.url)
    for i in range(2):
        assert plain_login(p.port) == b"235 2.0.0 OK\r\n"
        assert backend_lines(fake, i, 3) == [
            b"EHLO " + NAME.encode() + b"\r\n",
            b"XCLIENT ADDR=127.0.0.1\r\n", b"EHLO client.example\r\n"]
        assert fake.sessions[i]["proxy"].startswith(b"PROXY TCP4 127.0.0.1 ")


def test_xclient_after_greeting_to_postfix(postern, env):
    """Postfix takes XCLIENT right after its greeting: the second login
    (which sends it so) delivers with the client's address and login as
    the first one does."""
    p = start(postern, env)
    for user in ("alice", "bob"):
        msg = harness.make_message("early xclient %s" % user,
                                   to="bob@example.test")
        text = smtplib_send(p.port, user, msg, source="127.0.0.3")
        line = wait_log(env["postfix"], r"smtpd\[\d+\]: %s: client="
                        % queue_id(text))
        assert "client=unknown[127.0.0.3]" in line, line
        assert "sasl_username=%s" % user in line, line
        got = read_back(p, env, "bob", msg)
        assert b"Received: from client.example (unknown [127.0.0.3])" in got
    assert "refused XCLIENT" not in p.log_text()


@pytest.mark.parametrize("ehlo", [["PIPELINING"], ["XCLIENT HELO PROTO"]],
                         ids=["no-xclient", "no-useful-attribute"])
def test_xclient_not_offered_fails_closed(postern, env, auth_stub,
                                          fake_smtp, ehlo):
    """xclient on, and the backend does not take XCLIENT (or none of ADDR,
    LOGIN, NAME): the login fails with 451 as NGINX's does, instead of the
    session reaching the backend as postern's own, unauthenticated."""
    fake = fake_smtp(ehlo=ehlo)
    stub = auth_stub(lambda h: [("Auth-Status", "OK"),
                                ("Auth-Server", "127.0.0.1"),
                                ("Auth-Port", str(fake.port))])
    p = start(postern, env, auth=stub.url)
    with harness.LineClient(p.port) as c:
        c.readline()
        assert ehlo_auth_plain(c, "alice", "alice-pw") == \
            b"451 4.3.2 Internal server error\r\n"
        assert c.closed_by_peer()
    fake.wait_sessions(1)
    lines = fake.sessions[0]["lines"]
    assert lines[0] == b"EHLO " + NAME.encode() + b"\r\n"
    assert not any(ln.upper().startswith((b"XCLIENT", b"MAIL", b"AUTH"))
                   for ln in lines), lines
    wait_log(p, r"\[error\] .*upstream's XCLIENT takes nothing to pass|"
                r"\[error\] .*upstream does not offer XCLIENT")


def test_xclient_addr_of_ipv4_client_on_ipv6_socket(postern, env, auth_stub,
                                                      fake_smtp):
    """An IPv4 client reaching an IPv6 socket (::ffff:127.0.0.1) is told
    to the backend as ADDR=127.0.0.1, so its IPv4 rules apply."""
    fake = fake_smtp(ehlo=["XCLIENT ADDR"])
    stub = auth_stub(lambda h: [("Auth-Status", "OK"),
                                ("Auth-Server", "127.0.0.1"),
                                ("Auth-Port", str(fake.port))])
    port = harness.free_port()
    p = start(postern, env, auth=stub.url, smtp={
        "listen": "[::ffff:127.0.0.1]:%d ipv6only=off" % port})
    with harness.LineClient(port) as c:
        c.readline()
        assert ehlo_auth_plain(c, "alice", "alice-pw") == \
            b"235 2.0.0 OK\r\n"
    fake.wait_sessions(1)
    harness.wait_for(lambda: len(fake.sessions[0]["lines"]) >= 2, 10,
                     what="XCLIENT at the backend")
    assert fake.sessions[0]["lines"][1] == b"XCLIENT ADDR=127.0.0.1\r\n"
    assert "client: ::ffff:127.0.0.1" in p.log_text()


def test_xclient_off(postern, env):
    """Without XCLIENT Postfix sees postern's address, not the client's,
    and no login."""
    p = start(postern, env, smtp={"xclient": False})
    msg = harness.make_message("xclient off", to="bob@example.test")
    text = smtplib_send(p.port, "alice", msg, source="127.0.0.2")
    qid = queue_id(text)
    line = wait_log(env["postfix"], r"%s: client=" % qid)
    assert "client=unknown[127.0.0.1]" in line, line
    assert "sasl_username" not in line
    read_back(p, env, "bob", msg)


# ---------------------------------------------------------------------------
# greeting delay, pipelining, simple commands, limits

def test_greeting_delay(postern, env):
    p = start(postern, env, smtp={"smtp_greeting_delay": "500ms"})
    # a patient client is greeted, not before the delay (counted from the
    # accept, which follows the connect)
    began = time.monotonic()
    with harness.LineClient(p.port) as c:
        assert c.readline().startswith(b"220 ")
        assert time.monotonic() - began >= 0.5
        assert c.cmd("NOOP") == b"250 2.0.0 OK\r\n"
    # one that talks in the middle of the delay, too
    with harness.LineClient(p.port) as c:
        time.sleep(0.2)
        c.send("EHLO hasty.example\r\n")
        assert c.readline() == \
            b"503 5.5.0 Improper use of SMTP command pipelining\r\n"
        assert c.closed_by_peer()
    # an early talker is turned away
    with harness.LineClient(p.port) as c:
        c.send("EHLO early.example\r\n")
        assert c.readline() == \
            b"503 5.5.0 Improper use of SMTP command pipelining\r\n"
        assert c.closed_by_peer()
    harness.wait_for(lambda: "client was rejected before greeting"
                     in p.log_text(), 5, what="the log line")
    assert 'EHLO early.example' in p.log_text()


def test_pipelining_auth(postern, env):
    """EHLO, AUTH PLAIN, MAIL, RCPT and DATA in one packet: the commands
    after AUTH reach Postfix after the login."""
    p = start(postern, env, smtp={"smtp_capabilities": ["PIPELINING"]})
    msg = harness.make_message("pipelined", to="bob@example.test")
    ir = base64.b64encode(b"\0alice\0alice-pw")
    with harness.LineClient(p.port, timeout=20) as c:
        c.readline()
        c.send(b"EHLO client.example\r\nAUTH PLAIN " + ir + b"\r\n"
               b"MAIL FROM:<alice@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
        assert read_reply(c).startswith(b"250-" + NAME.encode())
        assert c.readline() == b"235 2.0.0 OK\r\n"
        assert c.readline().startswith(b"250 2.1.0")
        assert c.readline().startswith(b"250 2.1.5")
        assert c.readline().startswith(b"354 ")
        c.send(msg + b".\r\nQUIT\r\n")
        r = c.readline()
        assert r.startswith(b"250 "), r
        assert c.readline().startswith(b"221 ")
    read_back(p, env, "bob", msg)
    line = wait_log(env["postfix"], r"%s: client=" % queue_id(r))
    assert "sasl_username=alice" in line


def test_pipelining_none(postern, env, auth_stub):
    none_decide.port = env["postfix"].port
    stub = auth_stub(with_imap(none_decide, env))
    p = start(postern, env, smtp={"smtp_auth": ["none"]}, auth=stub.url)
    msg = harness.make_message("pipelined none", to="bob@example.test")
    with harness.LineClient(p.port, timeout=20) as c:
        c.readline()
        c.send(b"EHLO client.example\r\nMAIL FROM:<carol@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
        read_reply(c)
        assert c.readline() == b"250 2.0.0 OK\r\n"
        assert c.readline().startswith(b"250 2.1.5")
        assert c.readline().startswith(b"354 ")
        c.send(msg + b".\r\n")
        assert c.readline().startswith(b"250 ")
    read_back(p, env, "bob", msg)


def test_rset_noop_quit(postern, env, auth_stub):
    stub = auth_stub(with_imap(none_decide, env))
    p = start(postern, env, smtp={"smtp_auth": ["none"]}, auth=stub.url)
    with harness.LineClient(p.port) as c:
        c.readline()
        assert c.cmd("NOOP") == b"250 2.0.0 OK\r\n"
        assert c.cmd("RSET") == b"250 2.0.0 OK\r\n"
        assert c.cmd("MAIL FROM:<a@b>") == b"503 5.5.1 Bad sequence " \
            b"of commands\r\n"
        c.cmd("HELO x")
        assert c.cmd("MAIL FROM:<a@b>") == b"250 2.0.0 OK\r\n"
        assert c.cmd("RSET") == b"250 2.0.0 OK\r\n"
        # RSET forgot the sender
        assert c.cmd("RCPT TO:<bob@example.test>") == \
            b"503 5.5.1 Bad sequence of commands\r\n"
        assert c.cmd("noop") == b"250 2.0.0 OK\r\n"
        assert c.cmd("VRFY bob") == b"500 5.5.1 Invalid command\r\n"
        assert c.cmd("quit") == b"221 2.0.0 Bye\r\n"
        assert c.closed_by_peer()
    assert stub.requests == []


def test_mail_without_auth_refused(postern, env):
    p = start(postern, env)
    with harness.LineClient(p.port) as c:
        c.readline()
        c.cmd("HELO x")
        assert c.cmd("MAIL FROM:<a@b>") == \
            b"530 5.7.1 Authentication required\r\n"


def test_max_errors(postern, env):
    """Unknown commands count; known ones refused (VRFY, EXPN, HELP, an
    unknown AUTH mechanism, bad base64, STARTTLS without TLS) are answered
    alike but not counted, as NGINX counts only what its parser refuses."""
    p = start(postern, env, smtp={"max_errors": 3})
    with harness.LineClient(p.port) as c:
        c.readline()
        assert c.cmd("BOGUS") == b"500 5.5.1 Invalid command\r\n"
        c.cmd("HELO c")
        for refused in ("VRFY x", "EXPN y", "HELP", "AUTH FOO",
                        "AUTH PLAIN !!!", "STARTTLS"):
            for _ in range(3):
                assert c.cmd(refused) == b"500 5.5.1 Invalid command\r\n", \
                    refused
        assert c.cmd("MORE") == b"500 5.5.1 Invalid command\r\n"
        assert c.cmd("NOOP") == b"250 2.0.0 OK\r\n"
        assert c.cmd("THIRD") == b"500 5.5.1 Invalid command\r\n"
        assert c.closed_by_peer()
    assert "client sent too many invalid commands" in p.log_text()


def test_max_errors_pipelined(postern, env):
    """Errors in one packet count the same; the replies stay in step."""
    p = start(postern, env, smtp={"max_errors": 2})
    with harness.LineClient(p.port) as c:
        c.readline()
        c.send("X1\r\nNOOP\r\nX2\r\nNOOP\r\n")
        assert c.readline() == b"500 5.5.1 Invalid command\r\n"
        assert c.readline() == b"250 2.0.0 OK\r\n"
        assert c.readline() == b"500 5.5.1 Invalid command\r\n"
        assert c.closed_by_peer()


def test_client_buffer(postern, env):
    p = start(postern, env, smtp={"smtp_client_buffer": "1k"})
    with harness.LineClient(p.port) as c:
        c.readline()
        # a line that fits
        assert c.cmd("HELO " + "h" * 900) == b"250 " + NAME.encode() + b"\r\n"
        c.send("HELO " + "h" * 5000 + "\r\n")
        assert c.readline() == b"500 5.5.1 Invalid command\r\n"
        assert c.closed_by_peer()
    assert "client sent too long command" in p.log_text()
    # the bound is for commands, not for the relayed mail
    msg = harness.make_message("long lines", to="bob@example.test",
                               body=b"L" * 20000 + b"\r\n")
    smtplib_send(p.port, "alice", msg)
    read_back(p, env, "bob", msg)


def test_big_message(postern, env):
    """4 MB with long lines, 8-bit bytes and dots at line starts, read back
    byte for byte through postern's IMAP."""
    p = start(postern, env, smtp={"smtp_capabilities": ["8BITMIME"]})
    parts, n, i = [], 0, 0
    while n < 4 * 1024 * 1024:
        if i % 97 == 0:
            line = b"x" * (30000 + i)               # longer than 998
        elif i % 13 == 0:
            line = b". a dot line " + bytes(range(0x80, 0x100))
        else:
            line = (b"line %d " % i) + os.urandom(30).hex().encode()
        parts.append(line + b"\r\n")
        n += len(line) + 2
        i += 1
    msg = harness.make_message("big", to="bob@example.test",
                               body=b"".join(parts))
    with smtplib.SMTP("127.0.0.1", p.port, timeout=60) as s:
        s.ehlo("client.example")
        s.login("alice", PW["alice"])
        s.mail("alice@example.test", ["BODY=8BITMIME"])
        s.rcpt("bob@example.test")
        code, text = s.data(msg)
        assert code == 250, text
    read_back(p, env, "bob", msg, timeout=60)
