"""The client's address and name: Client-Host through the resolver (against
tests/integration/dnsstub.py on a loopback UDP port), XCLIENT ADDR/NAME to
the private Postfix, the PROXY protocol (v1 and v2 headers from trusted and
untrusted sources, and a v1 header to the backend), and the access
allow/deny rules."""

import base64
import os
import re
import smtplib
import signal
import socket

import pytest

import harness
import imap_util
import smtp_util
from smtp_util import ehlo_auth_plain, read_reply

NAME = "proxy.example.test"
PW = harness.USERS


@pytest.fixture(scope="module")
def env(dovecot, postfix, authsvc):
    users = harness.authsvc_users(dovecot, postfix)
    authsvc.write_users(users)
    return {"dovecot": dovecot, "postfix": postfix, "authsvc": authsvc}


GOOD = {"ptr": {"127.0.0.1": "good.example.test"},
        "a": {"good.example.test": ["127.0.0.1"]}}


class Requests:
    """The auth requests made from now on (authsvc's log)."""

    def __init__(self, svc):
        self.svc = svc
        self.start = len(svc.requests())

    def new(self):
        return [r["headers"] for r in self.svc.requests()[self.start:]]

    def one(self, protocol="smtp"):
        hs = [h for h in self.new() if h.get("Auth-Protocol") == protocol]
        assert len(hs) == 1, hs
        return hs[0]


def start(postern, env, smtp=None, mail=None, listen=None):
    s = {"protocol": "smtp"}
    if listen:
        s["listen"] = listen
    s.update(smtp or {})
    m = {"server_name": NAME}
    m.update(mail or {})
    return postern([s], mail=m, auth=env["authsvc"].url)


def send_mail(port, subject, source=None):
    """AUTH as alice and send one message to bob; the queue id."""
    msg = harness.make_message(subject, to="bob@example.test")
    with smtplib.SMTP("127.0.0.1", port, timeout=20,
                      source_address=(source, 0) if source else None) as s:
        s.ehlo("client.example")
        s.login("alice", PW["alice"])
        s.mail("alice@example.test")
        s.rcpt("bob@example.test")
        code, text = s.data(msg)
        assert code == 250, text
    return re.search(rb"queued as ([0-9A-F]+)", text).group(1).decode()


def postfix_client(postfix, qid):
    """What Postfix logged as client= for the message qid."""
    def find():
        m = re.search(r"smtpd\[\d+\]: %s: client=([^,\n]*)" % qid,
                      postfix.log_text())
        return m and m.group(1)
    return harness.wait_for(find, 15, what="maillog line of %s" % qid)


# ---------------------------------------------------------------------------
# the resolver

def test_resolver_good(postern, env, dns):
    d = dns(GOOD)
    p = start(postern, env, mail={"resolver": "127.0.0.1:%d" % d.port,
                                  "resolver_timeout": "3s"})
    rq = Requests(env["authsvc"])
    qid = send_mail(p.port, "resolver good")
    assert rq.one()["Client-Host"] == "good.example.test"
    # XCLIENT NAME= passed the name on
    assert postfix_client(env["postfix"], qid) == \
        "good.example.test[127.0.0.1]"
    qs = d.queries()
    assert "PTR 1.0.0.127.in-addr.arpa" in qs
    assert "A good.example.test" in qs


def test_auth_server_name_through_resolver(postern, env, dns):
    # Auth-Server as a host name goes to the configured resolver, not to
    # the system's: the name exists only in the stub
    table = {"ptr": {}, "a": {"mailstore.example.test": ["127.0.0.1"]}}
    d = dns(table)
    users = {}
    for name, pw in env["dovecot"].users.items():
        users[name] = {"pass": pw, "server": "mailstore.example.test",
                       "ports": {"imap": env["dovecot"].imap_port,
                                 "smtp": env["postfix"].port}}
    env["authsvc"].write_users(users)
    try:
        p = start(postern, env, mail={"resolver": "127.0.0.1:%d" % d.port,
                                      "resolver_timeout": "3s"})
        send_mail(p.port, "auth server by name")
        assert "A mailstore.example.test" in d.queries()
        assert "upstream: mailstore.example.test:%d" % env["postfix"].port \
            in p.log_text()
    finally:
        for u in users.values():
            u["server"] = "127.0.0.1"
        env["authsvc"].write_users(users)


@pytest.mark.parametrize("case,host", [
    ("missing", "[UNAVAILABLE]"), ("servfail", "[TEMPUNAVAIL]"),
    ("mismatch", "[UNAVAILABLE]"), ("no-a", "[UNAVAILABLE]")])
def test_resolver_no_name(postern, env, dns, case, host):
    table = dict(GOOD)
    mode = "normal"
    if case == "no-a":
        table = {"ptr": {"127.0.0.1": "noaddr.example.test"}, "a": {}}
    elif case in ("missing", "servfail", "mismatch"):
        mode = case
    d = dns(table, mode=mode)
    p = start(postern, env, mail={"resolver": "127.0.0.1:%d" % d.port,
                                  "resolver_timeout": "3s"})
    rq = Requests(env["authsvc"])
    qid = send_mail(p.port, "resolver %s" % case)
    assert rq.one()["Client-Host"] == host
    assert postfix_client(env["postfix"], qid) == "unknown[127.0.0.1]"
    assert d.queries(), "the stub was asked"
    assert "client host not resolved" in p.log_text()


def test_resolver_slow(postern, env, dns):
    """A resolver slower than resolver_timeout: the login goes on, well
    inside the session's timeout, with Client-Host saying the lookup
    failed for now."""
    d = dns(GOOD, mode="slow", delay=30)
    p = start(postern, env, mail={"resolver": "127.0.0.1:%d" % d.port,
                                  "resolver_timeout": "1s",
                                  "timeout": "20s"})
    rq = Requests(env["authsvc"])
    with harness.LineClient(p.port, timeout=10) as c:
        c.readline()
        # the socket timeout (10s) bounds the wait; 30s would be the stub's
        assert ehlo_auth_plain(c, "alice", "alice-pw") == b"235 2.0.0 OK\r\n"
    assert rq.one()["Client-Host"] == "[TEMPUNAVAIL]"


@pytest.mark.parametrize("mode", [
    "hostile-crlf", "hostile-space", "hostile-underscore", "hostile-slash",
    "hostile-longlabel", "hostile-longname"])
def test_resolver_hostile(postern, env, dns, mode):
    table = {"ptr": {}, "a": {"evil.example.test": ["127.0.0.1"]}}
    d = dns(table, mode=mode)
    p = start(postern, env, mail={"resolver": "127.0.0.1:%d" % d.port,
                                  "resolver_timeout": "3s"})
    rq = Requests(env["authsvc"])
    qid = send_mail(p.port, "resolver %s" % mode)
    h = rq.one()
    assert h["Client-Host"] == "[UNAVAILABLE]"
    assert not any("evil" in k or "evil" in v or "Injected" in k
                   for k, v in h.items()), h
    assert postfix_client(env["postfix"], qid) == "unknown[127.0.0.1]"
    log = p.log_text()
    assert "X-Injected" not in log
    assert "\r" not in log
    assert d.queries()[0].startswith("PTR ")


def test_resolver_imap_client_host(postern, env, dns):
    """Client-Host for IMAP too; a second session uses the cache."""
    d = dns(GOOD)
    p = postern([{"protocol": "imap"}],
                mail={"resolver": "127.0.0.1:%d valid=60s" % d.port,
                      "resolver_timeout": "3s"},
                auth=env["authsvc"].url)
    rq = Requests(env["authsvc"])
    import imaplib
    for _ in range(2):
        c = imaplib.IMAP4("127.0.0.1", p.port, timeout=10)
        c.login("bob", PW["bob"])
        c.logout()
    hs = [h for h in rq.new() if h["Auth-Protocol"] == "imap"]
    assert [h.get("Client-Host") for h in hs] == ["good.example.test"] * 2
    assert d.queries().count("PTR 1.0.0.127.in-addr.arpa") == 1


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as t:
            t.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_resolver_ipv6_client(postern_config, env, dns):
    d = dns({"ptr": {"::1": "good6.example.test"},
             "aaaa": {"good6.example.test": ["::1"]}})
    port = harness.free_port()
    p = postern_config([{"protocol": "smtp", "listen": "[::1]:%d" % port,
                         "xclient": False}],
                       mail={"server_name": NAME,
                             "resolver": "127.0.0.1:%d" % d.port,
                             "resolver_timeout": "3s"},
                       auth=env["authsvc"].url)
    # the harness waits on 127.0.0.1 only: wait for ::1 here
    p.start(wait=False)
    harness.wait_port(port, 15, p.proc, host="::1")
    rq = Requests(env["authsvc"])
    s = socket.create_connection(("::1", port), timeout=10)
    c = harness.LineClient.__new__(harness.LineClient)
    c.sock, c.buf = s, b""
    with c:
        c.readline()
        # (no XCLIENT: this Postfix is IPv4-only and refuses IPV6: ADDRs)
        assert ehlo_auth_plain(c, "alice", "alice-pw") == b"235 2.0.0 OK\r\n"
    h = rq.one()
    assert h["Client-IP"] == "::1"
    assert h["Client-Host"] == "good6.example.test"
    assert any(q.startswith("PTR 1.0.0.0.") and q.endswith(".ip6.arpa")
               for q in d.queries())
    assert "AAAA good6.example.test" in d.queries()


def test_resolver_uses_proxy_address(postern, env, dns):
    """The address from a trusted PROXY header is the one looked up."""
    d = dns({"ptr": {"192.0.2.7": "lb-client.example.test"},
             "a": {"lb-client.example.test": ["192.0.2.7"]}})
    port = harness.free_port()
    start(postern, env, listen="127.0.0.1:%d proxy_protocol" % port,
          smtp={"set_real_ip_from": ["127.0.0.1"]},
          mail={"resolver": "127.0.0.1:%d" % d.port,
                "resolver_timeout": "3s"})
    rq = Requests(env["authsvc"])
    with harness.LineClient(port, timeout=20) as c:
        c.send(smtp_util.proxy_v1("192.0.2.7", "127.0.0.1", 40000, port))
        c.readline()
        assert ehlo_auth_plain(c, "alice", "alice-pw") == b"235 2.0.0 OK\r\n"
    h = rq.one()
    assert h["Client-IP"] == "192.0.2.7"
    assert h["Client-Host"] == "lb-client.example.test"
    assert "PTR 7.2.0.192.in-addr.arpa" in d.queries()


# ---------------------------------------------------------------------------
# the client's host name as NGINX passes it on: the name, or why there is
# none ("[UNAVAILABLE]": no such name; "[TEMPUNAVAIL]": try again later),
# the same in Client-Host and in XCLIENT NAME, looked up once a session and
# only where something uses it

def grant(port):
    """An auth answer sending the login to 127.0.0.1:port."""
    return [("Auth-Status", "OK"), ("Auth-Server", "127.0.0.1"),
            ("Auth-Port", str(port))]


def xclient_line(fake):
    """The XCLIENT line the recording backend got (after its EHLO)."""
    fake.wait_sessions(1)
    harness.wait_for(lambda: len(fake.sessions[0]["lines"]) >= 2, 10,
                     what="XCLIENT at the backend")
    return fake.sessions[0]["lines"][1]


def lookups(p):
    """How many client host lookups failed, by postern's log."""
    return p.log_text().count("client host not resolved")


@pytest.mark.parametrize("case,host", [
    ("normal", "good.example.test"),
    ("missing", "[UNAVAILABLE]"),           # NXDOMAIN
    ("mismatch", "[UNAVAILABLE]"),          # the name does not confirm
    ("servfail", "[TEMPUNAVAIL]"),
    ("slow", "[TEMPUNAVAIL]"),              # no answer in resolver_timeout
    ("no-server", "[TEMPUNAVAIL]"),         # nothing listens on the port
    ("off", "[UNAVAILABLE]")])              # no resolver, as NGINX's SMTP
def test_client_host_status(postern, dns, auth_stub, fake_smtp, case, host):
    fake = fake_smtp(ehlo=["XCLIENT ADDR LOGIN NAME"])
    stub = auth_stub(lambda h: grant(fake.port))
    mail = {"server_name": NAME, "resolver_timeout": "1s", "timeout": "20s"}
    if case == "no-server":
        mail["resolver"] = "127.0.0.1:%d" % harness.free_port()
    elif case != "off":
        d = dns(GOOD, mode=case, delay=30)
        mail["resolver"] = "127.0.0.1:%d" % d.port
    p = postern([{"protocol": "smtp"}], mail=mail, auth=stub.url)
    with harness.LineClient(p.port, timeout=15) as c:
        c.readline()
        assert ehlo_auth_plain(c, "alice", "alice-pw") == b"235 2.0.0 OK\r\n"
    assert stub.requests[-1]["Client-Host"] == host
    assert xclient_line(fake) == (
        b"XCLIENT ADDR=127.0.0.1 LOGIN=alice NAME=%s\r\n" % host.encode())


@pytest.mark.parametrize("mode", ["servfail", "slow"])
def test_client_host_looked_up_once(postern, dns, auth_stub, fake_smtp,
                                    mode):
    """A failed lookup is remembered for the session: a second AUTH after
    Auth-Wait neither asks the DNS again nor waits for it again (these
    failures are not cached across sessions)."""
    fake = fake_smtp(ehlo=["XCLIENT ADDR LOGIN NAME"])
    stub = auth_stub(lambda h: [("Auth-Status", "Try again"),
                                ("Auth-Wait", "1")]
                     if h["Auth-Login-Attempt"] == "1" else grant(fake.port))
    d = dns(GOOD, mode=mode, delay=30)
    p = postern([{"protocol": "smtp"}],
                mail={"server_name": NAME, "timeout": "30s",
                      "resolver": "127.0.0.1:%d" % d.port,
                      "resolver_timeout": "1s"},
                auth=stub.url)
    with harness.LineClient(p.port, timeout=20) as c:
        c.readline()
        assert ehlo_auth_plain(c, "alice", "alice-pw").startswith(b"535 ")
        asked = d.queries()
        assert asked and all(q.startswith("PTR ") for q in asked), asked
        ir = base64.b64encode(b"\0alice\0alice-pw").decode()
        assert c.cmd("AUTH PLAIN " + ir) == b"235 2.0.0 OK\r\n"
    assert d.queries() == asked
    assert lookups(p) == 1
    assert [h["Client-Host"] for h in stub.requests] == ["[TEMPUNAVAIL]"] * 2
    assert xclient_line(fake).endswith(b" NAME=[TEMPUNAVAIL]\r\n")


def test_client_host_not_looked_up_for_auth_file(postern, dns,
                                                 auth_file_for):
    """IMAP with auth_file: neither a Client-Host nor an XCLIENT to fill,
    so the DNS is not asked."""
    d = dns(GOOD)
    p = postern([{"protocol": "imap"}],
                mail={"resolver": "127.0.0.1:%d" % d.port,
                      "resolver_timeout": "3s"},
                auth=auth_file_for("imap"))
    import imaplib
    c = imaplib.IMAP4("127.0.0.1", p.port, timeout=10)
    c.login("bob", PW["bob"])
    c.logout()
    assert d.queries() == []


@pytest.mark.parametrize("xclient,caps,asked", [
    (False, ["XCLIENT ADDR LOGIN NAME"], False),    # xclient = false
    (True, ["XCLIENT ADDR LOGIN"], False),          # NAME not offered
    (True, ["XCLIENT ADDR LOGIN NAME"], True)])
def test_client_host_smtp_auth_file(postern, dns, fake_smtp, xclient, caps,
                                    asked):
    """SMTP with auth_file: the name is looked up only for an XCLIENT that
    carries it."""
    fake = fake_smtp(ehlo=caps)
    d = dns(GOOD)
    p = postern([{"protocol": "smtp", "xclient": xclient}],
                mail={"server_name": NAME,
                      "resolver": "127.0.0.1:%d" % d.port,
                      "resolver_timeout": "3s"},
                auth=[("alice", "{PLAIN}alice-pw", "127.0.0.1:%d" % fake.port)])
    with harness.LineClient(p.port, timeout=15) as c:
        c.readline()
        assert ehlo_auth_plain(c, "alice", "alice-pw") == b"235 2.0.0 OK\r\n"
        # the backend has had its EHLO and XCLIENT once MAIL is answered
        assert c.cmd("MAIL FROM:<alice@example.test>").startswith(b"250")
    lines = fake.sessions[0]["lines"]
    if asked:
        assert lines[1] == (b"XCLIENT ADDR=127.0.0.1 LOGIN=alice "
                            b"NAME=good.example.test\r\n")
        assert d.queries().count("PTR 1.0.0.127.in-addr.arpa") == 1
    else:
        assert not any(b"NAME=" in ln for ln in lines), lines
        assert d.queries() == []


@pytest.mark.parametrize("resolver", [False, True])
def test_client_host_imap(postern, dns, auth_stub, resolver):
    """IMAP (and POP3): Client-Host only with a resolver (NGINX sends it for
    SMTP only; postern.conf(5) promises it wherever a resolver is set), with
    the same placeholders when the lookup fails."""
    stub = auth_stub(lambda h: [("Auth-Status", "Nope")])
    mail = {"resolver_timeout": "3s"}
    if resolver:
        d = dns(GOOD, mode="servfail")
        mail["resolver"] = "127.0.0.1:%d" % d.port
    p = postern([{"protocol": "imap"}], mail=mail, auth=stub.url)
    with harness.LineClient(p.port) as c:
        c.readline()
        assert c.cmd("a LOGIN bob pw").startswith(b"a NO")
    h = stub.requests[-1]
    if resolver:
        assert h["Client-Host"] == "[TEMPUNAVAIL]"
    else:
        assert "Client-Host" not in h


def test_client_host_unix_socket(postern_config, dns, auth_stub, fake_smtp):
    """A client on a UNIX socket has no address to look up: "[TEMPUNAVAIL]",
    as NGINX says, and no question to the DNS."""
    fake = fake_smtp(ehlo=["XCLIENT ADDR LOGIN NAME"])
    stub = auth_stub(lambda h: grant(fake.port))
    d = dns(GOOD)
    p = postern_config([{"protocol": "smtp"}],
                       mail={"server_name": NAME,
                             "resolver": "127.0.0.1:%d" % d.port,
                             "resolver_timeout": "3s"},
                       auth=stub.url)
    path = os.path.join(p.dir, "smtp.sock")
    p.servers.append({"protocol": "smtp", "listen": "unix:" + path})
    p.ports.append(None)
    p.write_conf()
    p.start()
    harness.wait_for(lambda: os.path.exists(path), 10, what="the socket")
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.settimeout(10)
    u.connect(path)
    c = harness.LineClient.__new__(harness.LineClient)
    c.sock, c.buf = u, b""
    with c:
        c.readline()
        assert ehlo_auth_plain(c, "alice", "alice-pw") == b"235 2.0.0 OK\r\n"
    assert stub.requests[-1]["Client-Host"] == "[TEMPUNAVAIL]"
    assert xclient_line(fake).endswith(b" NAME=[TEMPUNAVAIL]\r\n")
    assert d.queries() == []


# ---------------------------------------------------------------------------
# PROXY protocol from a load balancer

def pp_listen():
    port = harness.free_port()
    return port, "127.0.0.1:%d proxy_protocol" % port


@pytest.mark.parametrize("version", [1, 2])
def test_proxy_protocol_trusted(postern, env, version):
    port, listen = pp_listen()
    p = start(postern, env, listen=listen,
              smtp={"set_real_ip_from": ["127.0.0.1"]})
    if version == 1:
        hdr = smtp_util.proxy_v1("192.0.2.7", "198.51.100.1", 40007, 25)
    else:
        hdr = smtp_util.proxy_v2("192.0.2.7", "198.51.100.1", 40007, 25,
                                 tlvs=b"\x04\x00\x03abc")
    rq = Requests(env["authsvc"])
    msg = harness.make_message("pp v%d" % version, to="bob@example.test")
    with harness.LineClient(port, timeout=20) as c:
        c.send(hdr)
        assert c.readline().startswith(b"220 " + NAME.encode())
        c.send("EHLO client.example\r\n")
        read_reply(c)
        ir = base64.b64encode(b"\0alice\0alice-pw").decode()
        assert c.cmd("AUTH PLAIN " + ir) == b"235 2.0.0 OK\r\n"
        assert c.cmd("MAIL FROM:<alice@example.test>").startswith(b"250")
        assert c.cmd("RCPT TO:<bob@example.test>").startswith(b"250")
        assert c.cmd("DATA").startswith(b"354")
        c.send(msg + b".\r\n")
        r = c.readline()
        assert r.startswith(b"250 "), r
    qid = re.search(rb"queued as ([0-9A-F]+)", r).group(1).decode()
    h = rq.one()
    assert h["Client-IP"] == "192.0.2.7"
    assert h["Proxy-Protocol-Addr"] == "192.0.2.7"
    assert h["Proxy-Protocol-Port"] == "40007"
    assert h["Proxy-Protocol-Server-Addr"] == "198.51.100.1"
    assert h["Proxy-Protocol-Server-Port"] == "25"
    # XCLIENT ADDR= carried the real address
    assert postfix_client(env["postfix"], qid) == "unknown[192.0.2.7]"
    log = p.log_text()
    # as NGINX: the connect line names the balancer; the header's
    # addresses follow (NGINX writes them at debug)
    assert re.search(r"client 127\.0\.0\.1:\d+ connected to 127\.0\.0\.1:%d\n"
                     % port, log), log
    assert "PROXY protocol src: 192.0.2.7 40007, dst: 198.51.100.1 25\n" \
        in log, log
    assert "client logged in, client: 192.0.2.7" in log


def test_proxy_protocol_v2_ipv6_and_local(postern, env, fake_smtp):
    """An IPv6 client behind the balancer: Client-IP and XCLIENT
    ADDR=IPV6:... (to a recording backend: the Postfix fixture is IPv4
    only and refuses IPv6 XCLIENT addresses)."""
    fake = fake_smtp(ehlo=["XCLIENT ADDR LOGIN NAME"])
    stub = smtp_util.AuthStub(lambda h: [("Auth-Status", "OK"),
                                         ("Auth-Server", "127.0.0.1"),
                                         ("Auth-Port", str(fake.port))])
    try:
        port, listen = pp_listen()
        p = postern([{"protocol": "smtp", "listen": listen,
                      "set_real_ip_from": ["127.0.0.0/8"]}],
                    mail={"server_name": NAME}, auth=stub.url)
        ir = base64.b64encode(b"\0alice\0alice-pw").decode()
        with harness.LineClient(port) as c:
            c.send(smtp_util.proxy_v2("2001:db8::7", "2001:db8::1", 1234,
                                      587))
            c.readline()
            c.send("EHLO x\r\n")
            read_reply(c)
            assert c.cmd("AUTH PLAIN " + ir) == b"235 2.0.0 OK\r\n"
        h = stub.requests[-1]
        assert h["Client-IP"] == "2001:db8::7"
        assert h["Proxy-Protocol-Addr"] == "2001:db8::7"
        assert h["Proxy-Protocol-Port"] == "1234"
        assert h["Proxy-Protocol-Server-Addr"] == "2001:db8::1"
        fake.wait_sessions(1)
        harness.wait_for(lambda: len(fake.sessions[0]["lines"]) >= 2, 10,
                         what="XCLIENT")
        assert fake.sessions[0]["lines"][1] == (
            b"XCLIENT ADDR=IPV6:2001:db8::7 LOGIN=alice "
            b"NAME=[UNAVAILABLE]\r\n")
        # as NGINX writes it: the balancer's address and port, no context
        assert re.search(r"client 127\.0\.0\.1:\d+ connected to "
                         r"127\.0\.0\.1:%d\n" % port, p.log_text())
        assert "PROXY protocol src: 2001:db8::7 1234, dst: 2001:db8::1 587" \
            in p.log_text()
        # LOCAL (a health check): the peer's own address stands
        with harness.LineClient(port) as c:
            c.send(smtp_util.proxy_v2("192.0.2.9", "192.0.2.1", 1, 2,
                                      command=0))
            c.readline()
            c.send("EHLO x\r\n")
            read_reply(c)
            assert c.cmd("AUTH PLAIN " + ir) == b"235 2.0.0 OK\r\n"
        h = stub.requests[-1]
        assert h["Client-IP"] == "127.0.0.1"
        assert "Proxy-Protocol-Addr" not in h
        assert "192.0.2.9" not in p.log_text()
    finally:
        stub.stop()


@pytest.mark.parametrize("version", [1, 2])
def test_proxy_protocol_untrusted(postern, env, version):
    port, listen = pp_listen()
    p = start(postern, env, listen=listen,
              smtp={"set_real_ip_from": ["10.0.0.0/8"]})
    if version == 1:
        hdr = smtp_util.proxy_v1("192.0.2.8", "198.51.100.1", 40008, 25)
    else:
        hdr = smtp_util.proxy_v2("192.0.2.8", "198.51.100.1", 40008, 25)
    rq = Requests(env["authsvc"])
    with harness.LineClient(port) as c:
        c.send(hdr)
        c.readline()
        assert ehlo_auth_plain(c, "alice", "alice-pw") == b"235 2.0.0 OK\r\n"
    h = rq.one()
    assert h["Client-IP"] == "127.0.0.1"
    # as NGINX: the claim itself is passed on, for the service to judge
    assert h["Proxy-Protocol-Addr"] == "192.0.2.8"
    log = p.log_text()
    assert re.search(r"client 127\.0\.0\.1:\d+ connected", log)
    assert "untrusted" in log
    assert "client: 192.0.2.8" not in log


@pytest.mark.parametrize("junk", [
    b"EHLO x\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n",
    b"PROXY TCP4 999.2.3.4 5.6.7.8 1 2\r\n",
    smtp_util.PP2_SIG + b"\x31\x11\x00\x0c" + b"\0" * 12])
def test_proxy_protocol_broken(postern, env, junk):
    port, listen = pp_listen()
    p = start(postern, env, listen=listen,
              smtp={"set_real_ip_from": ["127.0.0.1"]})
    with harness.LineClient(port) as c:
        c.send(junk)
        assert smtp_util.drain(c) == b""       # closed, no greeting
        cport = c.sock.getsockname()[1]
    harness.wait_for(lambda: "broken header" in p.log_text(), 5,
                     what="the log line")
    # as NGINX: the connect line, with the balancer's address, came first
    mine = harness.last_session_lines(p)
    assert "client 127.0.0.1:%d connected to 127.0.0.1:%d" % (cport, port) \
        in mine[0] and "broken header" in mine[-1], mine


def test_proxy_protocol_header_that_never_comes(postern, env):
    """A client that starts a header and falls silent is logged as NGINX
    logs it, at info: a timeout, not a broken header."""
    port, listen = pp_listen()
    p = start(postern, env, listen=listen,
              smtp={"set_real_ip_from": ["127.0.0.1"], "timeout": "1s"})
    with harness.LineClient(port) as c:
        c.send(b"PROXY TCP4 192.0.2.1 ")
        assert smtp_util.drain(c) == b""       # closed, no greeting
    harness.wait_for(lambda: "client timed out" in p.log_text(), 10,
                     what="the log line")
    log = p.log_text()
    assert re.search(r"\[info\] .*client timed out \(110: Connection timed "
                     r"out\) while reading PROXY protocol, client: ", log), log
    assert "broken header" not in log and "[error]" not in log


def test_proxy_protocol_health_check_is_not_an_error(postern, env):
    """A balancer's health check connects and closes without a byte: that
    is logged at info, never as a broken header."""
    port, listen = pp_listen()
    p = start(postern, env, listen=listen,
              smtp={"set_real_ip_from": ["127.0.0.1"]})
    for _ in range(3):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    harness.wait_for(lambda: p.log_text().count(
        "closed the connection before the PROXY protocol header") >= 3, 5,
        what="the log lines")
    log = p.log_text()
    assert re.search(r"\[info\] .*closed the connection before the PROXY",
                     log)
    assert "broken header" not in log
    assert "[error]" not in log


def test_proxy_protocol_access_uses_real_address(postern, env):
    port, listen = pp_listen()
    p = start(postern, env, listen=listen,
              smtp={"set_real_ip_from": ["127.0.0.1"],
                    "access": ["deny 192.0.2.66", "allow all"]})
    with harness.LineClient(port) as c:
        c.send(smtp_util.proxy_v1("192.0.2.66", "192.0.2.1", 5, 25))
        assert smtp_util.drain(c) == b""       # closed, no greeting
    with harness.LineClient(port) as c:
        c.send(smtp_util.proxy_v1("192.0.2.67", "192.0.2.1", 5, 25))
        assert c.readline().startswith(b"220 ")
    harness.wait_for(lambda: re.search(r"access forbidden by rule.*client: "
                                       r"192\.0\.2\.66", p.log_text()), 5,
                     what="the access log line")


def test_proxy_protocol_to_backend(postern, env, fake_smtp):
    """proxy_protocol = true: a v1 header opens the backend connection,
    carrying the real client address when a trusted header gave one."""
    fake = fake_smtp(expect_proxy=True, ehlo=["PIPELINING"])
    svc = env["authsvc"]
    users = dict(svc.users)
    users["carol"] = {"pass": "carol-pw", "server": "127.0.0.1",
                      "port": fake.port}
    svc.write_users(users)
    try:
        port, listen = pp_listen()
        p = postern([{"protocol": "smtp", "proxy_protocol": True,
                      "xclient": False},
                     {"protocol": "smtp", "listen": listen,
                      "proxy_protocol": True, "xclient": False,
                      "set_real_ip_from": ["127.0.0.1"]}],
                    mail={"server_name": NAME}, auth=svc.url)
        ir = base64.b64encode(b"\0carol\0carol-pw").decode()
        with harness.LineClient(p.ports[0]) as c:
            c.readline()
            c.send("EHLO x\r\n")
            read_reply(c)
            assert c.cmd("AUTH PLAIN " + ir) == b"235 2.0.0 OK\r\n"
            cport = c.sock.getsockname()[1]
        with harness.LineClient(port) as c:
            c.send(smtp_util.proxy_v1("192.0.2.7", "198.51.100.1", 40007,
                                      587))
            c.readline()
            c.send("EHLO x\r\n")
            read_reply(c)
            assert c.cmd("AUTH PLAIN " + ir) == b"235 2.0.0 OK\r\n"
        fake.wait_sessions(2)
        assert fake.sessions[0]["proxy"] == (
            "PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n"
            % (cport, p.ports[0])).encode()
        assert fake.sessions[1]["proxy"] == (
            "PROXY TCP4 192.0.2.7 127.0.0.1 40007 %d\r\n" % port).encode()
        assert fake.sessions[0]["lines"][0].startswith(b"EHLO ")
    finally:
        svc.write_users({k: v for k, v in users.items() if k != "carol"})


# ---------------------------------------------------------------------------
# access rules

def test_access_deny_one(postern, env):
    p = start(postern, env, smtp={"access": ["deny 127.0.0.2",
                                             "allow all"]})
    with smtp_util.connect_from(p.port, "127.0.0.2") as c:
        assert smtp_util.drain(c) == b""       # closed, no greeting
    harness.wait_for(lambda: re.search(r"access forbidden by rule.*"
                                       r"client: 127\.0\.0\.2",
                                       p.log_text()), 5, what="log line")
    with smtp_util.connect_from(p.port, "127.0.0.1") as c:
        assert c.readline().startswith(b"220 ")
    # a client that is let in reaches Postfix normally
    qid = send_mail(p.port, "access allowed", source="127.0.0.3")
    assert postfix_client(env["postfix"], qid) == "unknown[127.0.0.3]"


def test_access_cidr_first_match(postern, env):
    p = start(postern, env, smtp={"access": ["allow 127.0.0.2",
                                             "deny 127.0.0.0/24",
                                             "allow all"]})
    with smtp_util.connect_from(p.port, "127.0.0.2") as c:
        assert c.readline().startswith(b"220 ")
    with smtp_util.connect_from(p.port, "127.0.0.3") as c:
        assert smtp_util.drain(c) == b""


def test_access_deny_all(postern, env):
    p = start(postern, env, mail={"access": ["deny all"]})
    for src in ("127.0.0.1", "127.0.0.2"):
        with smtp_util.connect_from(p.port, src) as c:
            assert smtp_util.drain(c) == b""
    # (the harness's own port check was refused as well)
    harness.wait_for(lambda: re.search(r"access forbidden by rule, client: "
                                       r"127\.0\.0\.2", p.log_text()), 5,
                     what="the log line")
    assert "connected to" not in p.log_text()


def test_proxy_protocol_balancer_not_one_client(postern, env):
    """Behind a trusted balancer every connection comes from its address:
    a silent client there must not hold up the next one (the harness runs
    4 workers, so preauth_per_client is 1)."""
    port, listen = pp_listen()
    p = start(postern, env, listen=listen,
              smtp={"set_real_ip_from": ["127.0.0.1"], "timeout": "30s"})
    with harness.LineClient(port, timeout=5) as a:
        a.send(smtp_util.proxy_v1("192.0.2.1", "192.0.2.100", 1000, 25))
        assert a.readline().startswith(b"220 ")
        # a now sits in a worker; b, another client, is still served
        with harness.LineClient(port, timeout=5) as b:
            b.send(smtp_util.proxy_v1("192.0.2.2", "192.0.2.100", 1001, 25))
            assert b.readline().startswith(b"220 ")
            assert b.cmd("NOOP") == b"250 2.0.0 OK\r\n"
        assert a.cmd("NOOP") == b"250 2.0.0 OK\r\n"
    assert "PROXY protocol src: 192.0.2.2 1001," in p.log_text()


def real_server(src):
    """The server address of a PROXY header from src's family."""
    return "2001:db8::100" if ":" in src else "192.0.2.100"


class FirstSession:
    """A session of the real address src behind a trusted balancer that
    keeps its worker, and so its address's share, where no client's
    silence could free it: logged in as "stuck", whose backend accepts and
    never greets (the worker waits in the backend login).  close() (also
    on leaving a with block) lets the backend go, which ends the session,
    and gives the auth service its users back."""

    def __init__(self, port, env, src):
        self.svc = env["authsvc"]
        self.saved = dict(self.svc.users)
        self.backend = imap_util.FakeBackend("silent")
        users = dict(self.saved)
        users["stuck"] = {"pass": "stuck-pw", "server": "127.0.0.1",
                          "ports": {"smtp": self.backend.port}}
        self.svc.write_users(users)
        self.c = harness.LineClient(port, timeout=5)
        try:
            self.c.send(smtp_util.proxy_v1(src, real_server(src), 1000, 25))
            assert self.c.readline().startswith(b"220 ")
            line = self.c.cmd("EHLO client.test")
            for _ in range(30):
                if not line.startswith(b"250-"):
                    break
                line = self.c.readline()
            assert line.startswith(b"250 "), line
            self.c.send("AUTH PLAIN %s\r\n" % base64.b64encode(
                b"\0stuck\0stuck-pw").decode())
            harness.wait_for(lambda: self.backend.accepted > 0, 10,
                             what="the first session to reach its backend")
        except BaseException:
            self.close()
            raise

    def close(self):
        self.backend.stop()
        self.c.close()
        self.svc.write_users(self.saved)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def share_taken(postern, env, src="192.0.2.1"):
    """postern behind a trusted balancer (preauth_per_client 1: 4 workers)
    with a first session of the real address src that holds its share
    (FirstSession): (p, port, first); the caller closes first."""
    port, listen = pp_listen()
    p = start(postern, env, listen=listen,
              smtp={"set_real_ip_from": ["127.0.0.1"], "timeout": "30s"})
    return p, port, FirstSession(port, env, src)


@pytest.mark.parametrize("first_src,same_src,other_src", [
    ("192.0.2.1", "192.0.2.1", "192.0.2.2"),
    # IPv6 counts by /64: another address of the same /64 is the same
    # client, the next /64 another one
    ("2001:db8:0:1::1", "2001:db8:0:1:ffff:ffff:ffff:ffff",
     "2001:db8:0:2::1"),
], ids=["IPv4", "IPv6 /64"])
def test_proxy_protocol_share_counts_the_real_address(postern, env, first_src,
                                                      same_src, other_src):
    """Behind a trusted balancer, preauth_per_client counts the real
    client: a second silent session of the same real address waits in the
    queue, another address is served at once, and the waiting one is
    served when the first ends."""
    p, port, first = share_taken(postern, env, first_src)
    with first, harness.LineClient(port, timeout=10) as same:
        same.send(smtp_util.proxy_v1(same_src, real_server(same_src), 1001,
                                     25))
        same.sock.settimeout(1.5)
        with pytest.raises(socket.timeout):
            same.readline()          # waits: the first has the share
        with harness.LineClient(port, timeout=5) as other:
            other.send(smtp_util.proxy_v1(other_src, real_server(other_src),
                                          1002, 25))
            assert other.readline().startswith(b"220 ")
        first.close()
        same.sock.settimeout(10)
        assert same.readline().startswith(b"220 ")
        assert same.cmd("NOOP") == b"250 2.0.0 OK\r\n"
    assert "waiting again" in p.log_text()


def test_proxy_protocol_share_waits_through_a_graceful_stop(postern, env):
    """A connection accepted before a graceful stop whose header comes
    after it, naming a real address that has its share, waits for the
    share and is served, as the queue is (it was dropped without a
    reply)."""
    p, port, first = share_taken(postern, env)
    fds = "/proc/%d/fd" % p.pid
    before = len(os.listdir(fds))
    with first, harness.LineClient(port, timeout=10) as same:
        # accepted (a descriptor more) before the stop closes the
        # listener, so that its header is read after the stop
        harness.wait_for(lambda: len(os.listdir(fds)) > before, 10,
                         what="the second connection to be accepted")
        p.kill(signal.SIGQUIT)
        harness.wait_for(lambda: "SIGQUIT" in p.log_text(), 10,
                         what="the graceful stop")
        same.send(smtp_util.proxy_v1("192.0.2.1", "192.0.2.100", 1001, 25))
        harness.wait_for(lambda: "waiting again" in p.log_text(), 10,
                         what="the second session to wait")
        first.close()
        assert same.readline().startswith(b"220 ")
        assert same.cmd("NOOP") == b"250 2.0.0 OK\r\n"
    assert "server is shutting down" not in p.log_text(), p.log_text()
