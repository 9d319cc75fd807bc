"""TLS end to end: real clients over implicit TLS and STARTTLS through
postern to the private Dovecot and Postfix.

Covers `listen ... ssl`, `starttls on|only` (capabilities before and after
the handshake, plaintext logins refused), the STARTTLS injection class
(CVE-2011-0411), RSA + ECDSA certificate pairs, ssl_protocols and
ssl_ciphers, session resumption (tickets, the builtin cache, a ticket key
shared by two instances), client certificates (refusal replies, Auth-SSL-*
headers, EXTERNAL), ALPN, a 20 MB message, 200 parallel sessions, a reload
that picks up a renewed certificate, and configuration errors naming the
file.  Certificates are made at test time (tls_util.py).
"""

import base64
import concurrent.futures
import imaplib
import os
import poplib
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

import harness
import tls_util
from tls_util import gnutls_cli, s_client


# --------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="module")
def certs():
    missing = harness.have("openssl")
    if missing:
        pytest.skip("openssl is not installed")
    d = harness.make_tmpdir("certs")
    try:
        c = tls_util.Certs(d).make()
    except harness.HarnessError as e:
        harness.remove_tmpdir(d)
        pytest.fail(str(e), pytrace=False)
    yield c
    harness.remove_tmpdir(d)


@pytest.fixture(scope="module")
def dovecot():
    """Overrides conftest's: room for 200 parallel logins of one user."""
    harness.backends_missing(harness.DOVECOT)
    dc = tls_util.ManyLoginsDovecot()
    try:
        dc.start()
    except harness.HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    yield dc
    dc.stop()


@pytest.fixture(scope="module")
def users(authsvc, dovecot, postfix):
    """The auth service sends the test users to Dovecot and Postfix."""
    u = {}
    for name, pw in dovecot.users.items():
        u[name] = {"pass": pw, "server": "127.0.0.1",
                   "ports": {"imap": dovecot.imap_port,
                             "pop3": dovecot.pop3_port,
                             "smtp": postfix.port}}
    authsvc.write_users(u)
    return u


PW = harness.USERS


def tls_server(certs, protocol, ssl_listen=True, pairs=("rsa",), **extra):
    """A servers entry on a free port: `listen ... ssl` or STARTTLS."""
    port = harness.free_port()
    s = {"protocol": protocol,
         "listen": "127.0.0.1:%d%s" % (port, " ssl" if ssl_listen else "")}
    s.update(certs.server_settings(*pairs))
    s.update(extra)
    return s


@pytest.fixture
def start(postern, authsvc, users):
    """start(server, ...) -> a running postern with those servers entries
    (auth_http to the module's auth service)."""
    def run(*servers, **kw):
        kw.setdefault("auth", authsvc.url)
        return postern(list(servers), **kw)
    return run


def fetch_first(c):
    """FETCH message 1 of INBOX over an imaplib connection."""
    typ, data = c.select("INBOX")
    assert typ == "OK", data
    typ, data = c.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK", data
    return data[0][1]


def one_message(dovecot, user, subject):
    dovecot.clear(user)
    msg = harness.make_message(subject)
    dovecot.put_message(user, msg)
    return msg


def auth_requests(authsvc, user=None):
    return [r for r in authsvc.requests()
            if user is None or r.get("user") == user]


# --------------------------------------------------------------------------
# implicit TLS with Python's clients

def test_imap4_ssl_verified(start, certs, dovecot):
    msg = one_message(dovecot, "alice", "imaps python")
    p = start(tls_server(certs, "imap"))
    c = imaplib.IMAP4_SSL("localhost", p.port,
                          ssl_context=certs.client_context(), timeout=10)
    try:
        assert c.login("alice", PW["alice"])[0] == "OK"
        assert fetch_first(c) == msg
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        c.logout()


def test_pop3_ssl_unverified(start, certs, dovecot):
    msg = one_message(dovecot, "bob", "pop3s python")
    p = start(tls_server(certs, "pop3"))
    c = poplib.POP3_SSL("127.0.0.1", p.port,
                        context=certs.client_context(verify=False),
                        timeout=10)
    try:
        c.user("bob")
        c.pass_(PW["bob"])
        assert c.stat()[0] == 1
        assert b"\r\n".join(c.retr(1)[1]) + b"\r\n" == msg
    finally:
        c.quit()


def test_smtp_ssl(start, certs, dovecot):
    dovecot.clear("bob")
    p = start(tls_server(certs, "smtp"))
    msg = harness.make_message("smtps python", to="bob@example.test")
    with smtplib.SMTP_SSL("localhost", p.port, timeout=10,
                          context=certs.client_context()) as s:
        s.ehlo("client.example")
        assert "starttls" not in s.esmtp_features
        s.login("alice", PW["alice"])
        s.sendmail("alice@example.test", ["bob@example.test"], msg)
    got = dovecot.wait_messages("bob", 1, timeout=30)
    assert b"Subject: smtps python" in got[0]


def test_auth_ssl_headers(start, certs, dovecot, authsvc):
    """Auth-SSL, -Protocol and -Cipher carry OpenSSL's names."""
    p = start(tls_server(certs, "imap"))
    ctx = certs.client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    before = len(authsvc.requests())
    c = imaplib.IMAP4_SSL("localhost", p.port, ssl_context=ctx, timeout=10)
    c.login("alice", PW["alice"])
    c.logout()
    h = authsvc.requests()[before]["headers"]
    assert h.get("Auth-SSL") == "on"
    assert h.get("Auth-SSL-Protocol") == "TLSv1.2"
    assert h.get("Auth-SSL-Cipher") == "ECDHE-RSA-AES128-GCM-SHA256"
    assert h.get("Auth-SSL-Verify") == "NONE"

    ctx = certs.client_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    c = imaplib.IMAP4_SSL("localhost", p.port, ssl_context=ctx, timeout=10)
    c.login("alice", PW["alice"])
    cipher = c.sock.cipher()[0]
    c.logout()
    h = authsvc.requests()[-1]["headers"]
    assert h.get("Auth-SSL-Protocol") == "TLSv1.3"
    assert h.get("Auth-SSL-Cipher") == cipher
    assert cipher.startswith("TLS_")


# --------------------------------------------------------------------------
# STARTTLS with Python's clients; capabilities before and after

def test_imap_starttls_on(start, certs, dovecot):
    msg = one_message(dovecot, "alice", "imap starttls")
    p = start(tls_server(certs, "imap", ssl_listen=False, starttls="on"))
    c = imaplib.IMAP4("localhost", p.port, timeout=10)
    try:
        assert "STARTTLS" in c.capabilities
        assert "LOGINDISABLED" not in c.capabilities
        before = set(c.capabilities)
        assert c.starttls(ssl_context=certs.client_context())[0] == "OK"
        # imaplib asked CAPABILITY again under TLS
        assert "STARTTLS" not in c.capabilities
        assert before - {"STARTTLS"} == set(c.capabilities)
        assert c.login("alice", PW["alice"])[0] == "OK"
        assert fetch_first(c) == msg
    finally:
        c.logout()


def test_imap_starttls_only(start, certs, dovecot):
    p = start(tls_server(certs, "imap", ssl_listen=False, starttls="only"))
    with harness.LineClient(p.port) as c:
        assert c.readline().startswith(b"* OK")
        assert c.cmd("a CAPABILITY") == \
            b"* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS STARTTLS LOGINDISABLED\r\n"
        assert c.readline() == b"a OK completed\r\n"
        r = c.cmd("b LOGIN alice %s" % PW["alice"])
        assert r.startswith(b"b BAD") or r.startswith(b"b NO"), r
        r = c.cmd("c AUTHENTICATE PLAIN %s" % base64.b64encode(
            b"\0alice\0" + PW["alice"].encode()).decode())
        assert r.startswith(b"c BAD") or r.startswith(b"c NO"), r
    c = imaplib.IMAP4("localhost", p.port, timeout=10)
    try:
        assert "LOGINDISABLED" in c.capabilities
        c.starttls(ssl_context=certs.client_context())
        assert "LOGINDISABLED" not in c.capabilities
        assert "STARTTLS" not in c.capabilities
        assert "AUTH=PLAIN" in c.capabilities
        assert c.login("alice", PW["alice"])[0] == "OK"
    finally:
        c.logout()


def test_pop3_starttls(start, certs, dovecot):
    msg = one_message(dovecot, "bob", "pop3 stls")
    p = start(tls_server(certs, "pop3", ssl_listen=False, starttls="on"))
    c = poplib.POP3("127.0.0.1", p.port, timeout=10)
    try:
        caps = c.capa()
        assert "STLS" in caps and "USER" in caps
        c.stls(context=certs.client_context(verify=False))
        caps = c.capa()
        assert "STLS" not in caps and "USER" in caps
        c.user("bob")
        c.pass_(PW["bob"])
        assert b"\r\n".join(c.retr(1)[1]) + b"\r\n" == msg
    finally:
        c.quit()


def test_pop3_starttls_only(start, certs, dovecot):
    p = start(tls_server(certs, "pop3", ssl_listen=False, starttls="only"))
    with harness.LineClient(p.port) as c:
        assert c.readline().startswith(b"+OK")
        assert c.cmd("USER bob").startswith(b"-ERR")
        assert c.cmd("AUTH PLAIN %s" % base64.b64encode(
            b"\0bob\0" + PW["bob"].encode()).decode()).startswith(b"-ERR")
        assert c.cmd("CAPA").startswith(b"+OK")
        caps = []
        while True:
            ln = c.readline()
            assert ln, "connection closed"
            if ln == b".\r\n":
                break
            caps.append(ln.strip())
        assert b"STLS" in caps and b"USER" not in caps
    c = poplib.POP3("127.0.0.1", p.port, timeout=10)
    try:
        c.stls(context=certs.client_context())
        assert "USER" in c.capa()
        c.user("bob")
        c.pass_(PW["bob"])
        c.stat()
    finally:
        c.quit()


def test_smtp_starttls(start, certs, dovecot):
    dovecot.clear("bob")
    p = start(tls_server(certs, "smtp", ssl_listen=False, starttls="on"))
    with smtplib.SMTP("localhost", p.port, timeout=10) as s:
        s.ehlo("client.example")
        assert s.has_extn("starttls") and s.has_extn("auth")
        s.starttls(context=certs.client_context())
        s.ehlo("client.example")
        assert not s.has_extn("starttls") and s.has_extn("auth")
        s.login("alice", PW["alice"])
        s.sendmail("alice@example.test", ["bob@example.test"],
                   harness.make_message("smtp starttls",
                                        to="bob@example.test"))
    got = dovecot.wait_messages("bob", 1, timeout=30)
    assert b"Subject: smtp starttls" in got[0]


def test_smtp_starttls_only(start, certs):
    p = start(tls_server(certs, "smtp", ssl_listen=False, starttls="only"))
    with smtplib.SMTP("localhost", p.port, timeout=10) as s:
        s.ehlo("client.example")
        assert s.has_extn("starttls") and not s.has_extn("auth")
        code, text = s.docmd("AUTH", "PLAIN " + base64.b64encode(
            b"\0alice\0" + PW["alice"].encode()).decode())
        # NGINX's reply to AUTH before TLS under starttls only
        assert (code, text) == (500, b"5.5.1 Invalid command")
        s.starttls(context=certs.client_context())
        s.ehlo("client.example")
        assert not s.has_extn("starttls") and s.has_extn("auth")
        s.login("alice", PW["alice"])


# --------------------------------------------------------------------------
# the STARTTLS injection class (CVE-2011-0411): what was pipelined after
# STARTTLS in plaintext is never answered under TLS

def _inject(certs, port, greet, first, check_reply, probe, probe_reply):
    """Connect, read the greeting, send `first` in one packet, read the
    STARTTLS reply, handshake, then expect that nothing arrives until the
    client's own probe command is answered."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = raw.makefile("rb")
    assert f.readline().startswith(greet)
    if greet == b"220":          # SMTP: EHLO first, read the multi-line reply
        raw.sendall(b"EHLO client.example\r\n")
        while True:
            ln = f.readline()
            assert ln, "closed"
            if ln[3:4] == b" ":
                break
    raw.sendall(first)
    ln = f.readline()
    assert check_reply(ln), ln
    # nothing else arrives in plaintext
    raw.settimeout(0.5)
    try:
        extra = raw.recv(100)
    except socket.timeout:
        extra = None
    assert extra is None, "plaintext after the STARTTLS reply: %r" % extra
    raw.settimeout(10)
    tls = certs.client_context().wrap_socket(raw, server_hostname="localhost")
    try:
        # the injected command must not be answered: the first thing the
        # server says under TLS is the answer to our own probe
        tls.sendall(probe)
        tf = tls.makefile("rb")
        first_line = tf.readline()
        assert probe_reply(first_line), first_line
    finally:
        tls.close()


def test_starttls_injection_imap(start, certs):
    p = start(tls_server(certs, "imap", ssl_listen=False, starttls="on"))
    _inject(certs, p.port, b"* OK", b"a STARTTLS\r\nb CAPABILITY\r\n",
            lambda ln: ln == b"a OK completed\r\n",
            b"c NOOP\r\n", lambda ln: ln == b"c OK completed\r\n")


def test_starttls_injection_pop3(start, certs):
    p = start(tls_server(certs, "pop3", ssl_listen=False, starttls="on"))
    _inject(certs, p.port, b"+OK", b"STLS\r\nCAPA\r\n",
            lambda ln: ln.startswith(b"+OK"),
            b"USER bob\r\n", lambda ln: ln.startswith(b"+OK")
            and b"Capability" not in ln)
    # the answer to CAPA would be "+OK Capability list follows"; USER's
    # "+OK" must come first and be the only line


def test_starttls_injection_smtp(start, certs):
    p = start(tls_server(certs, "smtp", ssl_listen=False, starttls="on"))
    # RSET would be answered "250 2.0.0 OK"; after STARTTLS the session is
    # reset, so the probe NOOP gives "250 2.0.0 OK" too: use HELO instead
    _inject(certs, p.port, b"220", b"STARTTLS\r\nRSET\r\n",
            lambda ln: ln.startswith(b"220 "),
            b"HELO probe.example\r\n",
            lambda ln: ln.startswith(b"250 ") and b"OK" not in ln)
