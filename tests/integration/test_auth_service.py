"""The auth protocol from the auth service's side (issue 3), through
postern, for IMAP and POP3: every request header of NGINX's protocol as
authsvc.py logs it, the handling of every response header, the auth
service down / slow / garbled, and postern's built-in auth_file (crypt
hashes, {PLAIN}, backend user, reload, malformed lines).
"""

import base64
import hashlib
import hmac
import imaplib
import os
import poplib
import re
import signal
import subprocess
import time

import pytest

import harness
from pop3_util import (AuthSvcWith, Pop3Raw, ScriptedAuth, apop_digest,
                       authsvc_users, b64, closed_port, cram_response,
                       plain_response, reset_authsvc, wait_log,
                       wait_requests, yescrypt_hash)

USERS = harness.USERS


@pytest.fixture
def svc(authsvc, dovecot):
    """The auth service with the Dovecot users and an empty request log."""
    return reset_authsvc(authsvc, dovecot)


def extra_authsvc(dovecot, args):
    """A second authsvc.py with the Dovecot users and extra options,
    started (the test fails if it does not start); the caller stops it."""
    s = AuthSvcWith(authsvc_users(dovecot), args)
    try:
        s.start()
    except (harness.HarnessError, TimeoutError) as e:
        pytest.fail(str(e), pytrace=False)
    return s


@pytest.fixture
def failwait_svc(dovecot):
    """A second authsvc.py that sends Auth-Wait: 1 with every refusal."""
    s = extra_authsvc(dovecot, ["--fail-wait", "1"])
    yield s
    s.stop()


@pytest.fixture
def keepalive_svc(dovecot):
    """An authsvc.py that keeps connections open when asked."""
    s = extra_authsvc(dovecot, ["--keepalive"])
    yield s
    s.stop()


def both(postern, auth, mail=None, **kw):
    """postern with an IMAP server (ports[0]) and a POP3 server
    (ports[1])."""
    m = {"pop3_auth": ["plain", "apop", "cram-md5"],
         "imap_auth": ["plain", "login", "cram-md5"]}
    m.update(mail or {})
    return postern([{"protocol": "imap"}, {"protocol": "pop3"}], mail=m,
                   auth=auth, **kw)


def imap_port(p):
    return p.ports[0]


def pop3_port(p):
    return p.ports[1]


class ImapRaw(harness.LineClient):
    """A raw IMAP client: reads the greeting; tagged commands."""

    def __init__(self, port, timeout=10.0):
        super().__init__(port, timeout=timeout)
        self.greeting = self.readline()
        self.n = 0

    def tagged(self, line):
        """Send "aN line"; returns (untagged lines, tagged reply)."""
        self.n += 1
        tag = "a%d" % self.n
        self.send("%s %s\r\n" % (tag, line))
        return self.until(tag)

    def until(self, tag):
        untagged = []
        for _ in range(1000):
            ln = self.readline()
            if ln == b"":
                return untagged, b""
            if ln.startswith(tag.encode() + b" "):
                return untagged, ln
            untagged.append(ln)
        raise AssertionError("no tagged reply")


def headers_of(rq):
    return rq["headers"]


def fill(dovecot, user, n=1):
    dovecot.clear(user)
    for i in range(n):
        dovecot.put_message(user, harness.make_message(
            "auth test %d" % i, to="%s@example.test" % user))


# ---------------------------------------------------------------------------
# the request

COMMON = ("Host", "Auth-Method", "Auth-User", "Auth-Pass", "Auth-Protocol",
          "Auth-Login-Attempt", "Client-IP")


def check_common(h, method, user, protocol, attempt="1"):
    for k in COMMON:
        assert k in h, "%s missing from %r" % (k, h)
    assert h["Host"] == "127.0.0.1"
    assert h["Auth-Method"] == method
    assert h["Auth-User"] == user
    assert h["Auth-Protocol"] == protocol
    assert h["Auth-Login-Attempt"] == attempt
    assert h["Client-IP"] == "127.0.0.1"
    # nothing of TLS or SMTP on a plain IMAP/POP3 session
    for k in h:
        assert not k.startswith("Auth-SSL") and not k.startswith("Auth-SMTP")


def test_request_headers_imap(postern, svc, dovecot):
    p = both(postern, svc.url)
    port = imap_port(p)
    c = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    c.login("alice", USERS["alice"])
    c.logout()
    with ImapRaw(port) as c:
        _u, r = c.tagged("AUTHENTICATE PLAIN " +
                         plain_response("bob", USERS["bob"]))
        assert b" OK" in r, r
    with ImapRaw(port) as c:
        c.send("a1 AUTHENTICATE LOGIN\r\n")
        assert c.readline() == b"+ VXNlcm5hbWU6\r\n"
        c.send(b64("alice") + "\r\n")
        assert c.readline() == b"+ UGFzc3dvcmQ6\r\n"
        c.send(b64(USERS["alice"]) + "\r\n")
        _u, r = c.until("a1")
        assert b" OK" in r, r
    with ImapRaw(port) as c:
        c.send("a1 AUTHENTICATE CRAM-MD5\r\n")
        ch = c.readline()[2:].strip()
        salt = base64.b64decode(ch).decode()
        c.send(cram_response("bob", USERS["bob"], ch) + "\r\n")
        _u, r = c.until("a1")
        assert b" OK" in r, r
    reqs = wait_requests(svc, 4)
    h = [headers_of(r) for r in reqs]
    check_common(h[0], "plain", "alice", "imap")
    assert h[0]["Auth-Pass"] == USERS["alice"]
    check_common(h[1], "plain", "bob", "imap")
    # AUTH LOGIN goes out as "plain", as NGINX sends it
    check_common(h[2], "plain", "alice", "imap")
    check_common(h[3], "cram-md5", "bob", "imap")
    assert h[3]["Auth-Salt"] == salt
    assert h[3]["Auth-Pass"] == hmac.new(USERS["bob"].encode(),
                                         salt.encode(),
                                         hashlib.md5).hexdigest()
    for x in h[:3]:
        assert "Auth-Salt" not in x
    assert [r["result"] for r in reqs] == ["OK"] * 4


def test_request_headers_pop3(postern, svc, dovecot):
    p = both(postern, svc.url)
    port = pop3_port(p)
    with Pop3Raw(port) as c:
        assert c.login("alice", USERS["alice"]).startswith(b"+OK")
    with Pop3Raw(port) as c:
        ts = c.timestamp()
        r = c.cmd("APOP bob " + apop_digest(ts, USERS["bob"]))
        assert r.startswith(b"+OK"), r
    with Pop3Raw(port) as c:
        ch = c.cmd("AUTH CRAM-MD5")[2:].strip()
        salt = base64.b64decode(ch).decode()
        assert c.cmd(cram_response("alice", USERS["alice"], ch)) \
            .startswith(b"+OK")
    reqs = wait_requests(svc, 3)
    h = [headers_of(r) for r in reqs]
    check_common(h[0], "plain", "alice", "pop3")
    check_common(h[1], "apop", "bob", "pop3")
    assert h[1]["Auth-Salt"] == ts
    assert h[1]["Auth-Pass"] == apop_digest(ts, USERS["bob"])
    check_common(h[2], "cram-md5", "alice", "pop3")
    assert h[2]["Auth-Salt"] == salt


def test_request_escaping(postern, svc, dovecot):
    """User and password are URL-escaped the NGINX way (space, "%" and
    control bytes as %XX); the service unescapes the exact bytes."""
    user = "carol smith%"
    pw = 'p a%s+s?w"\u00e9\t!'
    reset_authsvc(svc, dovecot, **{user: {
        "pass": pw, "server": "127.0.0.1",
        "ports": {"pop3": dovecot.pop3_port, "imap": dovecot.imap_port},
        "backend_user": "alice", "backend_pass": USERS["alice"]}})
    p = both(postern, svc.url)
    with Pop3Raw(pop3_port(p)) as c:
        r = c.cmd("AUTH PLAIN " + plain_response(user, pw))
        assert r.startswith(b"+OK"), r
    with ImapRaw(imap_port(p)) as c:
        lit = pw.encode()
        c.send(b'a1 LOGIN "carol smith%%" {%d}\r\n' % len(lit))
        assert c.readline().startswith(b"+")
        c.send(lit + b"\r\n")
        _u, r = c.until("a1")
        assert r.startswith(b"a1 OK"), r
    reqs = wait_requests(svc, 2)
    raw_pw = pw.encode("utf-8").decode("latin-1")
    for rq, proto in zip(reqs, ("pop3", "imap")):
        h = rq["headers"]
        assert h["Auth-Protocol"] == proto
        assert h["Auth-User"] == "carol%20smith%25"
        assert h["Auth-Pass"] == raw_pw.replace("%", "%25").replace(
            " ", "%20").replace("\t", "%09")
        assert rq["user"] == user
        assert rq["result"] == "OK"


def test_login_attempt_counts_with_auth_wait(postern, failwait_svc,
                                             dovecot):
    """With Auth-Wait the session stays; each attempt is counted."""
    fill(dovecot, "alice")
    p = both(postern, failwait_svc.url)
    with Pop3Raw(pop3_port(p), timeout=20) as c:
        t0 = time.monotonic()
        assert c.login("alice", "wrong-1") == \
            b"-ERR Invalid login or password\r\n"
        # Auth-Wait: 1 delays the answer (a lower bound only)
        assert time.monotonic() - t0 >= 0.9
        assert c.login("alice", "wrong-2").startswith(b"-ERR")
        assert c.login("alice", USERS["alice"]).startswith(b"+OK")
        assert c.cmd("STAT").startswith(b"+OK 1 ")
    with ImapRaw(imap_port(p), timeout=20) as c:
        _u, r = c.tagged('LOGIN alice "wrong-1"')
        assert r == b"a1 NO Invalid login or password\r\n"
        _u, r = c.tagged('LOGIN alice "wrong-2"')
        assert r.startswith(b"a2 NO")
        _u, r = c.tagged('LOGIN alice "%s"' % USERS["alice"])
        assert r.startswith(b"a3 OK"), r
    reqs = wait_requests(failwait_svc, 6)
    attempts = [(r["headers"]["Auth-Protocol"],
                 r["headers"]["Auth-Login-Attempt"], r["result"])
                for r in reqs]
    assert attempts == [("pop3", "1", "FAIL"), ("pop3", "2", "FAIL"),
                        ("pop3", "3", "OK"), ("imap", "1", "FAIL"),
                        ("imap", "2", "FAIL"), ("imap", "3", "OK")]


def test_auth_wait_path(postern, svc):
    """/wait: every answer is a refusal with Auth-Wait."""
    url = svc.url.replace("/auth", "/wait")
    p = both(postern, url)
    with Pop3Raw(pop3_port(p), timeout=20) as c:
        for _ in range(3):
            assert c.login("bob", USERS["bob"]) == \
                b"-ERR Invalid login or password\r\n"
    reqs = wait_requests(svc, 3)
    assert [r["headers"]["Auth-Login-Attempt"] for r in reqs] == \
        ["1", "2", "3"]
    assert all(r["path"] == "/wait" for r in reqs)


def test_status_wait_then_ok(postern, svc, dovecot):
    """Auth-Status: WAIT: postern asks again after Auth-Wait."""
    url = svc.url.replace("/auth", "/status-wait")
    p = both(postern, url)
    with Pop3Raw(pop3_port(p), timeout=20) as c:
        assert c.login("bob", USERS["bob"]).startswith(b"+OK")
    reqs = wait_requests(svc, 2)
    assert [r["result"] for r in reqs] == ["WAIT", "OK"]


def test_tempfail_with_wait(postern, svc):
    """A temporary refusal with Auth-Wait: its text reaches the client,
    the session goes on after the wait."""
    p = both(postern, svc.url.replace("/auth", "/tempfail"))
    with Pop3Raw(pop3_port(p), timeout=20) as c:
        assert c.login("bob", USERS["bob"]) == \
            b"-ERR Temporary server problem, try again later\r\n"
        assert c.cmd("NOOP") == b"+OK\r\n"
    with ImapRaw(imap_port(p), timeout=20) as c:
        _u, r = c.tagged('LOGIN bob "%s"' % USERS["bob"])
        assert r == b"a1 NO Temporary server problem, try again later\r\n"
        _u, r = c.tagged("NOOP")
        assert r.startswith(b"a2 OK"), r
    wait_log(p, r'client login failed: "Temporary server problem')


def test_refusal_without_wait_closes(postern, svc):
    """As NGINX: without Auth-Wait the session ends after the refusal."""
    p = both(postern, svc.url)
    with Pop3Raw(pop3_port(p)) as c:
        assert c.login("bob", "wrong") == \
            b"-ERR Invalid login or password\r\n"
        assert c.closed_by_peer(5)
    with ImapRaw(imap_port(p)) as c:
        _u, r = c.tagged('LOGIN bob "wrong"')
        assert r == b"a1 NO Invalid login or password\r\n"
        assert c.closed_by_peer(5)


@pytest.mark.parametrize("keepalive", [0, 4])
def test_auth_http_keepalive(postern, keepalive_svc, dovecot, keepalive):
    p = both(postern, keepalive_svc.url,
             mail={"auth_http_keepalive": keepalive})
    for i in range(3):
        c = imaplib.IMAP4("127.0.0.1", imap_port(p), timeout=10)
        c.login("alice", USERS["alice"])
        c.logout()
    c = poplib.POP3("127.0.0.1", pop3_port(p), timeout=10)
    c.user("bob")
    c.pass_(USERS["bob"])
    c.quit()
    reqs = wait_requests(keepalive_svc, 4)
    assert [r["result"] for r in reqs] == ["OK"] * 4
    conns = [r["conn"] for r in reqs]
    asked = [headers_of(r).get("Connection") for r in reqs]
    if keepalive:
        # each server (IMAP, POP3) keeps its own idle connections
        assert asked == ["keep-alive"] * 4
        assert conns[0] == conns[1] == conns[2] != conns[3], conns
    else:
        # NGINX's way: a connection per request, closed by the service
        assert asked == [None] * 4
        assert len(set(conns)) == 4, conns


def test_auth_http_keepalive_service_restarted(postern, keepalive_svc,
                                               dovecot):
    """Kept connections die with the service; the next login opens a new
    one to the restarted service."""
    p = both(postern, keepalive_svc.url, mail={"auth_http_keepalive": 4})
    c = imaplib.IMAP4("127.0.0.1", imap_port(p), timeout=10)
    c.login("alice", USERS["alice"])
    c.logout()
    port = keepalive_svc.port
    keepalive_svc.stop()
    keepalive_svc.start(port)
    c = imaplib.IMAP4("127.0.0.1", imap_port(p), timeout=10)
    c.login("alice", USERS["alice"])
    c.logout()
    reqs = wait_requests(keepalive_svc, 1)
    assert reqs[-1]["result"] == "OK"


def test_auth_http_header(postern, svc):
    p = both(postern, svc.url, mail={"auth_http_header": [
        ["X-Auth-Key", "s3cr3t-key"], ["X-Postern-Site", "test site"]]})
    with Pop3Raw(pop3_port(p)) as c:
        assert c.login("bob", USERS["bob"]).startswith(b"+OK")
    with ImapRaw(imap_port(p)) as c:
        _u, r = c.tagged('LOGIN bob "%s"' % USERS["bob"])
        assert b"OK" in r
    for rq in wait_requests(svc, 2):
        h = rq["headers"]
        assert h["X-Auth-Key"] == "s3cr3t-key"
        assert h["X-Postern-Site"] == "test site"


def test_auth_http_host_name(postern, svc):
    """auth_http naming the service by host name: Host carries it."""
    url = svc.url.replace("127.0.0.1", "localhost")
    p = both(postern, url)
    with Pop3Raw(pop3_port(p)) as c:
        assert c.login("bob", USERS["bob"]).startswith(b"+OK")
    (rq,) = wait_requests(svc, 1)
    assert rq["headers"]["Host"] == "localhost"


def test_auth_http_host_resolved_at_load(postern_config, svc):
    """As NGINX: the auth_http host name is looked up when the file is
    loaded, not for each login; a reload looks it up again, and a name
    that no longer resolves then fails the reload, not the logins.  The
    name comes from a hosts file (nss_wrapper) that the test changes."""
    assert os.path.exists(harness.NSS_WRAPPER), \
        "tests/setup-debian.sh installs it"
    name = "authsvc.postern.test"
    p = postern_config([{"protocol": "pop3"}],
                       auth=svc.url.replace("127.0.0.1", name))
    hosts = os.path.join(p.dir, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 %s\n" % name)
    p.env = harness.nss_wrapper_env(hosts)
    p.start()
    with Pop3Raw(p.ports[0]) as c:
        assert c.login("bob", USERS["bob"]).startswith(b"+OK")
    with open(hosts + ".new", "w") as f:
        f.write("127.0.0.2 other.postern.test\n")
    os.rename(hosts + ".new", hosts)
    # the address from load still serves; no login looks the name up
    with Pop3Raw(p.ports[0]) as c:
        assert c.login("bob", USERS["bob"]).startswith(b"+OK"), p.logs()
    _reload(p)
    wait_log(p, r'reload failed, old configuration kept: .*auth_http: '
             r'host "%s" not found' % re.escape(name))
    with Pop3Raw(p.ports[0]) as c:
        assert c.login("bob", USERS["bob"]).startswith(b"+OK")
    reqs = wait_requests(svc, 3)
    assert [r["headers"]["Host"] for r in reqs] == [name] * 3
    r = subprocess.run(p.command("-t"), env=p.env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0
    assert re.search(r'postern\.conf:\d+: auth_http: host "%s" not found'
                     % re.escape(name), r.stdout + r.stderr), \
        r.stdout + r.stderr


@pytest.mark.parametrize("setting", ["auth_http_timeout", "resolver_timeout"])
def test_zero_timeout_refused(postern_config, setting):
    """0 would fail every login at once: postern -t refuses it."""
    p = postern_config([{"protocol": "pop3"}], mail={setting: 0},
                       auth="http://127.0.0.1:9/auth")
    r = p.run("-t")
    assert r.returncode != 0
    assert re.search(r"postern\.conf:\d+: %s: time out of range: the least is \"1ms\""
                     % setting, r.stdout + r.stderr), r.stdout + r.stderr


# ---------------------------------------------------------------------------
# the response

def test_auth_user_pass_replace_credentials(postern, svc, dovecot):
    """Auth-User / Auth-Pass: the backend login is another user."""
    fill(dovecot, "alice", 3)
    fill(dovecot, "bob", 1)
    reset_authsvc(svc, dovecot, carol={
        "pass": "carol-pw", "server": "127.0.0.1",
        "ports": {"pop3": dovecot.pop3_port, "imap": dovecot.imap_port},
        "backend_user": "alice", "backend_pass": USERS["alice"]})
    p = both(postern, svc.url)
    c = poplib.POP3("127.0.0.1", pop3_port(p), timeout=10)
    try:
        c.user("carol")
        c.pass_("carol-pw")
        assert c.stat()[0] == 3            # alice's mailbox
    finally:
        c.quit()
    c = imaplib.IMAP4("127.0.0.1", imap_port(p), timeout=10)
    try:
        assert c.login("carol", "carol-pw")[0] == "OK"
        typ, data = c.select("INBOX")
        assert typ == "OK" and int(data[0]) == 3
    finally:
        c.logout()
    # postern logs the client's login name
    wait_log(p, r'client logged in, client: [^,]+, server: [^,]+, '
             r'login: "carol"')
    harness.wait_for(lambda: "user=<alice>" in open(dovecot.log).read(), 5,
                     what="alice's login in Dovecot's log")


def test_auth_user_only(postern, svc, dovecot):
    """Auth-User alone: the client's password goes to the backend."""
    fill(dovecot, "bob", 2)
    reset_authsvc(svc, dovecot, robert={
        "pass": USERS["bob"], "server": "127.0.0.1",
        "ports": {"pop3": dovecot.pop3_port, "imap": dovecot.imap_port},
        "backend_user": "bob"})
    p = both(postern, svc.url)
    with Pop3Raw(pop3_port(p)) as c:
        assert c.login("robert", USERS["bob"]).startswith(b"+OK")
        assert c.cmd("STAT").startswith(b"+OK 2 ")


def test_auth_server_host_name(postern, svc, dovecot):
    """Auth-Server may be a host name (postern resolves it)."""
    fill(dovecot, "bob", 1)
    reset_authsvc(svc, dovecot, bob={
        "pass": USERS["bob"], "server": "localhost",
        "ports": {"pop3": dovecot.pop3_port, "imap": dovecot.imap_port}})
    p = both(postern, svc.url)
    with Pop3Raw(pop3_port(p)) as c:
        assert c.login("bob", USERS["bob"]).startswith(b"+OK")
        assert c.cmd("STAT").startswith(b"+OK 1 ")
    c = imaplib.IMAP4("127.0.0.1", imap_port(p), timeout=10)
    try:
        assert c.login("bob", USERS["bob"])[0] == "OK"
    finally:
        c.logout()
    wait_log(p, r'client logged in.*upstream: localhost:%d'
             % dovecot.pop3_port)


def test_auth_server_unresolvable(postern, svc, dovecot):
    reset_authsvc(svc, dovecot, bob={
        "pass": USERS["bob"], "server": "no-such-host.invalid",
        "ports": {"pop3": dovecot.pop3_port, "imap": dovecot.imap_port}})
    p = both(postern, svc.url)
    with Pop3Raw(pop3_port(p)) as c:
        assert c.login("bob", USERS["bob"]) == \
            b"-ERR internal server error\r\n"
    wait_log(p, r"\[error\].*no-such-host\.invalid")


def test_no_backend_for_protocol(postern, svc, dovecot):
    """A refusal text of the service's own reaches the client."""
    reset_authsvc(svc, dovecot, dave={
        "pass": "dave-pw", "server": "127.0.0.1",
        "ports": {"imap": dovecot.imap_port}})
    p = both(postern, svc.url)
    with Pop3Raw(pop3_port(p)) as c:
        assert c.login("dave", "dave-pw") == \
            b"-ERR No backend for pop3\r\n"


# ---------------------------------------------------------------------------
# the service misbehaving: a temporary error, with a logged reason

MISBEHAVIOUR = [
    ("down-port", None, r"auth http server .*: connect\(\) to .* failed "
                        r"\(111: Connection refused\)"),
    ("down", "/down", r"auth http server .*(closed|invalid|incomplete)"),
    ("garbled", "/garbled", r"auth http server .* invalid"),
    ("http500", "/http500", r"auth http server .*no Auth-Status"),
    ("slow", "/slow?delay=5", r"auth http server .*timed out"),
]


@pytest.mark.parametrize("name,path,reason", MISBEHAVIOUR,
                         ids=[m[0] for m in MISBEHAVIOUR])
def test_service_misbehaves(postern, svc, name, path, reason):
    if path is None:
        url = "http://127.0.0.1:%d/auth" % closed_port()
    else:
        url = svc.url.replace("/auth", path)
    p = both(postern, url, mail={"auth_http_timeout": "1s"})
    with Pop3Raw(pop3_port(p), timeout=20) as c:
        assert c.login("bob", USERS["bob"]) == \
            b"-ERR internal server error\r\n"
        assert c.closed_by_peer(10)
    with ImapRaw(imap_port(p), timeout=20) as c:
        _u, r = c.tagged('LOGIN bob "%s"' % USERS["bob"])
        assert _u == [b"* BAD internal server error\r\n"] and r == b"", \
            (_u, r)
    m = wait_log(p, r"\[error\] .*%s.* while in http auth state" % reason)
    assert USERS["bob"] not in p.log_text()
    assert m


# ---------------------------------------------------------------------------
# proxy_pass_error_message with a backend that refuses

@pytest.mark.parametrize("pass_msg", [False, True], ids=["off", "on"])
def test_proxy_pass_error_message(postern, svc, dovecot, pass_msg):
    """The service says yes, Dovecot says no (wrong backend password)."""
    reset_authsvc(svc, dovecot, carol={
        "pass": "carol-pw", "server": "127.0.0.1",
        "ports": {"pop3": dovecot.pop3_port, "imap": dovecot.imap_port},
        "backend_user": "alice", "backend_pass": "not-alices-pw"})
    p = both(postern, svc.url,
             mail={"proxy_pass_error_message": pass_msg})
    with Pop3Raw(pop3_port(p), timeout=20) as c:
        r = c.login("carol", "carol-pw")
        if pass_msg:
            assert r.startswith(b"-ERR [AUTH] Authentication failed"), r
        else:
            assert r == b"-ERR internal server error\r\n"
    with ImapRaw(imap_port(p), timeout=20) as c:
        u, r = c.tagged('LOGIN carol "carol-pw"')
        if pass_msg:
            assert r.startswith(b"a1 NO [AUTHENTICATIONFAILED]"), (u, r)
        else:
            assert u == [b"* BAD internal server error\r\n"], (u, r)
    wait_log(p, r"upstream sent invalid response: \"-ERR \[AUTH\]")
    assert "not-alices-pw" not in p.log_text()


# ---------------------------------------------------------------------------
# auth_file

def test_auth_file_hashes(postern_config, dovecot):
    """SHA-512 crypt (openssl passwd -6), yescrypt and {PLAIN}."""
    fill(dovecot, "alice", 2)
    fill(dovecot, "bob", 1)
    pop_port, imap_port_ = dovecot.pop3_port, dovecot.imap_port
    entries_imap = [
        ("alice", harness.crypt_hash(USERS["alice"]),
         "127.0.0.1:%d" % imap_port_),
        ("bob", "{PLAIN}" + USERS["bob"], "127.0.0.1:%d" % imap_port_),
    ]
    y = yescrypt_hash(USERS["alice"])
    if y is not None:
        entries_imap.append(("alice-y", y, "127.0.0.1:%d" % imap_port_,
                             "alice"))
    entries_pop = [(n, h, "127.0.0.1:%d" % pop_port) + tuple(rest)
                   for n, h, _s, *rest in entries_imap]
    p = postern_config([{"protocol": "imap", "auth_file": "auth_imap"},
                        {"protocol": "pop3", "auth_file": "auth_pop3"}],
                       tag="authfile")
    harness.write_auth_file(os.path.join(p.dir, "auth_imap"), entries_imap)
    harness.write_auth_file(os.path.join(p.dir, "auth_pop3"), entries_pop)
    assert entries_imap[0][1].startswith("$6$")
    p.start()
    for name, want in [("alice", 2), ("bob", 1)] + \
            ([("alice-y", 2)] if y else []):
        pw = USERS["alice" if name.startswith("alice") else name]
        c = poplib.POP3("127.0.0.1", p.ports[1], timeout=10)
        try:
            c.user(name)
            c.pass_(pw)
            assert c.stat()[0] == want
        finally:
            c.quit()
        c = imaplib.IMAP4("127.0.0.1", p.ports[0], timeout=10)
        try:
            assert c.login(name, pw)[0] == "OK"
            assert int(c.select("INBOX")[1][0]) == want
        finally:
            c.logout()
        with Pop3Raw(p.ports[1]) as c:
            assert c.login(name, pw + "x") == \
                b"-ERR Invalid login or password\r\n"
    if y is None:
        pytest.skip("no yescrypt (mkpasswd or Python's crypt) to test with")


def test_auth_file_cram_apop_need_plain(postern, dovecot):
    """CRAM-MD5 and APOP need the secret: {PLAIN} works, a crypt hash is
    a refusal."""
    fill(dovecot, "bob", 1)
    port = "127.0.0.1:%d" % dovecot.pop3_port
    p = postern([{"protocol": "pop3"}],
                mail={"pop3_auth": ["plain", "apop", "cram-md5"]},
                auth=[("bob", "{PLAIN}" + USERS["bob"], port),
                      ("alice", harness.crypt_hash(USERS["alice"]), port)])
    with Pop3Raw(p.port) as c:
        r = c.cmd("APOP bob " + apop_digest(c.timestamp(), USERS["bob"]))
        assert r.startswith(b"+OK"), r
    with Pop3Raw(p.port) as c:
        ch = c.cmd("AUTH CRAM-MD5")[2:].strip()
        assert c.cmd(cram_response("bob", USERS["bob"], ch)) \
            .startswith(b"+OK")
    with Pop3Raw(p.port, timeout=20) as c:
        r = c.cmd("APOP alice " + apop_digest(c.timestamp(),
                                              USERS["alice"]))
        assert r.startswith(b"-ERR"), r
    with Pop3Raw(p.port, timeout=20) as c:
        ch = c.cmd("AUTH CRAM-MD5")[2:].strip()
        assert c.cmd(cram_response("alice", USERS["alice"], ch)) \
            .startswith(b"-ERR")
    # the operator learns why
    wait_log(p, r'\[warn\].*client login failed: "Invalid login or '
             r'password" \(auth_file: user "alice" has a crypt hash, apop '
             r'needs \{PLAIN\}\)')
    wait_log(p, r'\(auth_file: user "alice" has a crypt hash, cram-md5 '
             r'needs \{PLAIN\}\)')


def test_auth_file_backend_user(postern, dovecot):
    fill(dovecot, "alice", 3)
    p = postern([{"protocol": "pop3"}],
                auth=[("carol", "{PLAIN}" + USERS["alice"],
                       "127.0.0.1:%d" % dovecot.pop3_port, "alice")])
    c = poplib.POP3("127.0.0.1", p.port, timeout=10)
    try:
        c.user("carol")
        c.pass_(USERS["alice"])
        assert c.stat()[0] == 3
    finally:
        c.quit()
    wait_log(p, r'client logged in, .*login: "carol"')


def test_auth_file_server_host_name(postern, dovecot):
    fill(dovecot, "bob", 1)
    p = postern([{"protocol": "pop3"}],
                auth=[("bob", "{PLAIN}" + USERS["bob"],
                       "localhost:%d" % dovecot.pop3_port)])
    with Pop3Raw(p.port) as c:
        assert c.login("bob", USERS["bob"]).startswith(b"+OK")
        assert c.cmd("STAT").startswith(b"+OK 1 ")


def _reload(p):
    before = p.log_text().count("reconfigured from")
    p.kill(signal.SIGHUP)
    harness.wait_for(lambda: p.log_text().count("reconfigured from")
                     > before or "reload failed" in p.log_text(), 15,
                     what="the reload")


def test_auth_file_reload(postern, dovecot):
    """SIGHUP re-reads the file: a new user can log in, a removed one no
    longer can, and sessions from before go on."""
    fill(dovecot, "alice", 2)
    fill(dovecot, "bob", 1)
    port = "127.0.0.1:%d" % dovecot.pop3_port
    # preauth_per_client: the half-done session below must not hold the
    # only worker share of 127.0.0.1
    p = postern([{"protocol": "pop3"}], mail={"preauth_per_client": 4},
                auth=[("bob", "{PLAIN}" + USERS["bob"], port)])
    with Pop3Raw(p.port, timeout=20) as c:
        assert c.login("alice", USERS["alice"]).startswith(b"-ERR")
    # an established session and one between USER and PASS
    old = poplib.POP3("127.0.0.1", p.port, timeout=10)
    old.user("bob")
    old.pass_(USERS["bob"])
    half = Pop3Raw(p.port)
    assert half.cmd("USER bob") == b"+OK\r\n"

    harness.write_auth_file(p.auth_file, [
        ("alice", "{PLAIN}" + USERS["alice"], port)])
    _reload(p)
    assert "reload failed" not in p.log_text()

    with Pop3Raw(p.port) as c:
        assert c.login("alice", USERS["alice"]).startswith(b"+OK")
        assert c.cmd("STAT").startswith(b"+OK 2 ")
    with Pop3Raw(p.port, timeout=20) as c:
        assert c.login("bob", USERS["bob"]).startswith(b"-ERR")
    try:
        assert old.stat()[0] == 1
        assert old.retr(1)[0].startswith(b"+OK")
    finally:
        old.quit()
    # the session that started under the old file finishes under it
    try:
        assert half.cmd("PASS " + USERS["bob"]).startswith(b"+OK")
        assert half.cmd("STAT").startswith(b"+OK 1 ")
    finally:
        half.close()


def test_auth_file_reload_bad_keeps_old(postern, dovecot):
    port = "127.0.0.1:%d" % dovecot.pop3_port
    p = postern([{"protocol": "pop3"}],
                auth=[("bob", "{PLAIN}" + USERS["bob"], port)])
    with open(p.auth_file, "a") as f:
        f.write("broken-line-without-a-hash\n")
    _reload(p)
    wait_log(p, r"reload failed, old configuration kept: .*%s:3"
             % re.escape(os.path.basename(p.auth_file)))
    with Pop3Raw(p.port) as c:
        assert c.login("bob", USERS["bob"]).startswith(b"+OK")
    assert p.alive()


@pytest.mark.parametrize("line", [
    "carol",
    "carol {PLAIN}x",
    "carol {PLAIN}x 127.0.0.1:99999",
    "carol {PLAIN}x 127.0.0.1:110 backend extra",
    "carol nohash-at-all 127.0.0.1:110",
    "bob {PLAIN}again 127.0.0.1:110",
    "carol {PLAIN}x [::1",
], ids=["name-only", "no-server", "bad-port", "extra-field", "bad-hash",
        "duplicate", "bad-ipv6"])
def test_auth_file_malformed_line(postern_config, line):
    p = postern_config([{"protocol": "pop3"}],
                       auth=[("bob", "{PLAIN}bob-pw", "127.0.0.1:110")])
    with open(p.auth_file, "a") as f:
        f.write("# a comment\n\n")
        f.write(line + "\n")
    r = p.run("-t")
    assert r.returncode != 0, r
    out = r.stdout + r.stderr
    # FILE:LINE of the bad line (line 1 is the harness's comment)
    assert re.search(re.escape(p.auth_file) + r":5\b", out) or \
        re.search(r"auth_file:5\b", out), out
    assert "bob-pw" not in out


def test_auth_file_ok_for_t(postern_config):
    p = postern_config([{"protocol": "pop3"}],
                       auth=[("bob", "{PLAIN}bob-pw", "127.0.0.1:110"),
                             ("carol", "{PLAIN}c", "127.0.0.1"),
                             ("dave", "{PLAIN}d", "[::1]:1110"),
                             ("erin", harness.crypt_hash("e"),
                              "mail.example.test:110", "erin@backend")])
    with open(p.auth_file, "a") as f:
        f.write("   # an indented comment\n\n")
    r = p.run("-t")
    assert r.returncode == 0, r.stdout + r.stderr


def test_auth_file_same_work_for_unknown_user(postern, dovecot):
    """An unknown user is refused like a wrong password (same text)."""
    port = "127.0.0.1:%d" % dovecot.pop3_port
    p = postern([{"protocol": "pop3"}],
                auth=[("bob", harness.crypt_hash(USERS["bob"]), port)])
    with Pop3Raw(p.port, timeout=20) as c:
        a = c.login("nobody-at-all", "x")
    with Pop3Raw(p.port, timeout=20) as c:
        b = c.login("bob", "x")
    assert a == b == b"-ERR Invalid login or password\r\n"


# ---------------------------------------------------------------------------
# responses authsvc.py does not make (a scripted service)

@pytest.fixture
def scripted():
    made = []

    def make(response):
        if isinstance(response, str):
            response = response.encode("latin-1")
        s = ScriptedAuth(response)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


OK_HEADERS = ("Auth-Status: OK\r\nAuth-Server: 127.0.0.1\r\n"
              "Auth-Port: {port}\r\n")

ACCEPTED = [
    ("lowercase", "HTTP/1.0 200 OK\r\nauth-status: OK\r\n"
     "auth-server: 127.0.0.1\r\nAUTH-PORT: {port}\r\n\r\n"),
    ("http11", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
     "Connection: close\r\n" + OK_HEADERS + "\r\n"),
    ("with-body", "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n" +
     OK_HEADERS + "\r\nbody text, ignored\r\n"),
    ("bare-lf", "HTTP/1.0 200 OK\nAuth-Status: OK\nAuth-Server: 127.0.0.1\n"
     "Auth-Port: {port}\n\n"),
    ("spaces", "HTTP/1.0 200 OK\r\nAuth-Status:   OK  \r\n"
     "Auth-Server:127.0.0.1\r\nAuth-Port: {port}\r\n\r\n"),
]


@pytest.mark.parametrize("name,template", ACCEPTED,
                         ids=[a[0] for a in ACCEPTED])
def test_response_accepted(postern, scripted, dovecot, name, template):
    auth = scripted(template.format(port=dovecot.pop3_port))
    p = postern([{"protocol": "pop3"}], auth=auth.url)
    with Pop3Raw(p.port) as c:
        r = c.login("bob", USERS["bob"])
        assert r.startswith(b"+OK"), (r, p.logs())


REFUSED = [
    ("no-port", "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
     "Auth-Server: 127.0.0.1\r\n\r\n", r"did not send server or port"),
    ("no-server", "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
     "Auth-Port: {port}\r\n\r\n", r"did not send server or port"),
    ("bad-port", "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
     "Auth-Server: 127.0.0.1\r\nAuth-Port: 99999\r\n\r\n",
     r'invalid server port:"99999"'),
    ("text-port", "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
     "Auth-Server: 127.0.0.1\r\nAuth-Port: pop3\r\n\r\n",
     r'invalid server port:"pop3"'),
    ("bad-server", "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
     "Auth-Server: 127.0.0.1 evil\r\nAuth-Port: {port}\r\n\r\n",
     r"invalid server address"),
    ("no-status", "HTTP/1.0 200 OK\r\nAuth-Server: 127.0.0.1\r\n"
     "Auth-Port: {port}\r\n\r\n", r"no Auth-Status"),
    ("no-colon", "HTTP/1.0 200 OK\r\nAuth-Status OK\r\n\r\n",
     r"invalid header in response"),
    ("ctl-in-value", "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n"
     "Auth-Server: 127.0.0.1\r\nAuth-Port: {port}\r\n"
     "Auth-User: bob\x01x\r\n\r\n", r"invalid header in response"),
    ("truncated", "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n",
     r"(closed|incomplete)"),
    ("huge", "HTTP/1.0 200 OK\r\nX-Junk: " + "x" * 200000 + "\r\n\r\n",
     r"invalid"),
]


@pytest.mark.parametrize("name,template,reason", REFUSED,
                         ids=[r[0] for r in REFUSED])
def test_response_malformed(postern, scripted, dovecot, name, template,
                            reason):
    """A malformed answer is a temporary error with a logged reason."""
    auth = scripted(template.format(port=dovecot.pop3_port))
    p = both(postern, auth.url)
    with Pop3Raw(pop3_port(p)) as c:
        assert c.login("bob", USERS["bob"]) == \
            b"-ERR internal server error\r\n"
    with ImapRaw(imap_port(p)) as c:
        u, r = c.tagged('LOGIN bob "%s"' % USERS["bob"])
        assert u == [b"* BAD internal server error\r\n"], (u, r)
    wait_log(p, r"\[error\] .*auth http server .*%s" % reason)


def test_long_refusal_text_is_cut(postern, scripted):
    """A refusal text as long as a header line may be still reaches the
    client as a refusal, cut to a reply line's size (AUTH_MESSAGE_SHOWN),
    instead of ending the session without one."""
    text = "refused " + "x" * 3000
    auth = scripted("HTTP/1.0 200 OK\r\nAuth-Status: %s\r\n\r\n" % text)
    p = both(postern, auth.url)
    with Pop3Raw(pop3_port(p)) as c:
        r = c.login("bob", USERS["bob"])
        assert r == b"-ERR " + text[:512].encode() + b"\r\n", r[:80]
    with ImapRaw(imap_port(p)) as c:
        u, r = c.tagged('LOGIN bob "%s"' % USERS["bob"])
        assert r.endswith(b" NO " + text[:512].encode() + b"\r\n"), r[:80]


def test_bad_auth_wait_ignored(postern, scripted):
    """As NGINX: an Auth-Wait that is not a number is ignored; the client
    gets the refusal text and the session ends as without Auth-Wait."""
    auth = scripted("HTTP/1.0 200 OK\r\nAuth-Status: Go away\r\n"
                    "Auth-Wait: soon\r\n\r\n")
    p = both(postern, auth.url)
    with Pop3Raw(pop3_port(p)) as c:
        assert c.login("bob", USERS["bob"]) == b"-ERR Go away\r\n"
        assert c.closed_by_peer(5)
    with ImapRaw(imap_port(p)) as c:
        u, r = c.tagged('LOGIN bob "%s"' % USERS["bob"])
        assert (u, r) == ([], b"a1 NO Go away\r\n")
        assert c.closed_by_peer(5)
    wait_log(p, r'\[warn\] .*client login failed: "Go away" \(auth http '
             r'server .* sent invalid wait:"soon", ignored\)')


DUP_STATUS = [
    ("refusal-then-ok", "Auth-Status: Invalid login\r\nAuth-Status: OK\r\n"),
    ("ok-then-refusal", "Auth-Status: OK\r\nAuth-Status: Invalid login\r\n"),
    ("wait-then-refusal",
     "Auth-Status: WAIT\r\nAuth-Status: Invalid login\r\n"),
]


@pytest.mark.parametrize("name,statuses", DUP_STATUS,
                         ids=[d[0] for d in DUP_STATUS])
def test_several_auth_status_fail_closed(postern, scripted, dovecot, name,
                                         statuses):
    """As NGINX: one Auth-Status that is neither OK nor WAIT refuses the
    login, whatever the others say."""
    auth = scripted("HTTP/1.0 200 OK\r\n" + statuses +
                    "Auth-Server: 127.0.0.1\r\nAuth-Port: %d\r\n\r\n"
                    % dovecot.pop3_port)
    p = postern([{"protocol": "pop3"}], auth=auth.url)
    with Pop3Raw(p.port) as c:
        assert c.login("bob", USERS["bob"]) == b"-ERR Invalid login\r\n"
        assert c.closed_by_peer(5)
    assert "client logged in" not in p.log_text()


def test_interim_responses_skipped(postern, scripted, dovecot):
    """A 1xx answer is interim (RFC 9110 section 15.2): the final answer
    after it is the one that counts."""
    auth = scripted("HTTP/1.1 100 Continue\r\n\r\n"
                    "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                    "HTTP/1.0 200 OK\r\n" +
                    OK_HEADERS.format(port=dovecot.pop3_port) + "\r\n")
    p = postern([{"protocol": "pop3"}], auth=auth.url)
    with Pop3Raw(p.port) as c:
        assert c.login("bob", USERS["bob"]).startswith(b"+OK"), p.logs()


class InterimKeepAuth(harness.FakeServer):
    """An auth service that keeps its connection open and answers the
    first request with an interim 100 and, after a pause, the final OK
    for alice; every later request with a refusal.  .users lists each
    request's Auth-User."""

    def __init__(self, backend_port):
        self.backend_port = backend_port
        self.users = []
        super().__init__()
        self.url = "http://127.0.0.1:%d/auth" % self.port

    def handle(self, c, index):
        try:
            self.serve(c)
        except OSError:
            pass                # stop() closed the connection

    def serve(self, c):
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = c.recv(4096)
                if not data:
                    return
                buf += data
            req, buf = buf.split(b"\r\n\r\n", 1)
            user = re.search(rb"\r\nAuth-User: ([^\r]*)", req).group(1)
            with self.lock:
                self.users.append(user.decode())
                first = len(self.users) == 1
            if first:
                c.sendall(b"HTTP/1.1 100 Continue\r\n"
                          b"Connection: keep-alive\r\n\r\n")
                time.sleep(0.5)
                c.sendall(("HTTP/1.1 200 OK\r\nAuth-Status: OK\r\n"
                           "Auth-Server: 127.0.0.1\r\nAuth-Port: %d\r\n"
                           "Auth-User: alice\r\nAuth-Pass: %s\r\n"
                           "Connection: keep-alive\r\nContent-Length: 0"
                           "\r\n\r\n" % (self.backend_port,
                                           USERS["alice"])).encode())
            else:
                c.sendall(b"HTTP/1.1 200 OK\r\nAuth-Status: Invalid login"
                          b"\r\nConnection: keep-alive\r\n"
                          b"Content-Length: 0\r\n\r\n")


def test_interim_response_keepalive(postern, dovecot):
    """With auth_http_keepalive, an interim 100 (keep-alive) must not end
    the exchange: the connection would go back to the idle stack with the
    final answer still coming, and the next login, anyone's, would read
    it as its own (alice's mailbox for mallory's wrong password)."""
    auth = InterimKeepAuth(dovecot.imap_port)
    try:
        p = postern([{"protocol": "imap"}], auth=auth.url,
                    mail={"auth_http_keepalive": 1,
                          "auth_http_timeout": "10s"})
        with ImapRaw(p.port) as c:
            u, r = c.tagged('LOGIN alice "%s"' % USERS["alice"])
            assert (u, r[:5]) == ([], b"a1 OK"), (u, r)
        with ImapRaw(p.port) as c:
            u, r = c.tagged('LOGIN mallory "guess"')
            assert (u, r) == ([], b"a1 NO Invalid login\r\n")
        assert auth.users == ["alice", "mallory"]
        assert auth.accepted == 1       # the kept connection was reused
    finally:
        auth.stop()


def test_request_bytes(postern, scripted, dovecot):
    """The request itself: HTTP/1.0, CRLF lines, one of each header,
    Host first, a blank line and nothing after it."""
    auth = scripted(OK_HEADERS.format(port=dovecot.pop3_port).join(
        ["HTTP/1.0 200 OK\r\n", "\r\n"]))
    p = postern([{"protocol": "pop3"}],
                mail={"auth_http_header": [["X-Site", "a b"]]},
                auth=auth.url)
    with Pop3Raw(p.port) as c:
        assert c.login("bob", USERS["bob"]).startswith(b"+OK")
    (raw,) = auth.requests
    assert raw.startswith(b"GET /auth HTTP/1.0\r\nHost: 127.0.0.1\r\n")
    assert raw.endswith(b"\r\n\r\n") and raw.count(b"\r\n\r\n") == 1
    lines = raw[:-4].split(b"\r\n")[1:]
    names = [ln.split(b":", 1)[0] for ln in lines]
    assert all(b": " in ln for ln in lines), lines
    assert len(names) == len(set(n.lower() for n in names)), names
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert names[:8] == [b"Host", b"Auth-Method", b"Auth-User",
                         b"Auth-Pass", b"Auth-Protocol",
                         b"Auth-Login-Attempt", b"Client-IP", b"X-Site"]
    assert b"X-Site: a b\r\n" in raw
