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
from imap_util import FakeBackend, dave_at
from tls_util import s_client


# --------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="module")
def dovecot():
    """Overrides conftest's: room for 200 parallel logins of one user."""
    harness.backends_missing(harness.DOVECOT)
    # carol, dave, erin: each used by one test only, so that no test
    # depends on Dovecot noticing files replaced within the same second
    dc = tls_util.ManyLoginsDovecot(dict(harness.USERS, carol="carol-pw",
                                         dave="dave-pw", erin="erin-pw"))
    try:
        dc.start()
    except harness.HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    yield dc
    dc.stop()


@pytest.fixture(scope="module")
def users(authsvc, dovecot, postfix):
    """The auth service sends the test users to Dovecot and Postfix."""
    u = harness.authsvc_users(dovecot, postfix)
    authsvc.write_users(u)
    return u


PW = dict(harness.USERS, carol="carol-pw", dave="dave-pw", erin="erin-pw")
LOGOUT = b"a LOGOUT\r\n"


def tls_server(certs, protocol, ssl_listen=True, pairs=("rsa",), **extra):
    """A servers entry on a free port: `listen ... ssl` or STARTTLS."""
    port = harness.free_port()
    s = {"protocol": protocol,
         "listen": "127.0.0.1:%d%s" % (port, " ssl" if ssl_listen else "")}
    s.update(certs.server_settings(*pairs))
    s.update(extra)
    return s


def test_fast_stop_during_a_handshake(certs, postern_config):
    """A fast stop ends a handshake waiting for its client's hello, and the
    log says that the stop ended it: the stop also shuts the socket down,
    which the handshake would otherwise read as the client's leaving."""
    nowhere = "127.0.0.1:%d" % harness.free_port()
    p = postern_config([tls_server(certs, "imap")], mail={"timeout": "60s"},
                       auth=[("alice", "{PLAIN}alice-pw", nowhere)])
    p.start()
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as raw:
        # the start of a hello's record: a client that has said nothing
        # waits in the acceptor, not in a worker's handshake
        raw.sendall(b"\x16\x03\x01")
        # a worker's handshake has read them: the session is in it
        peer = raw.getsockname()[1]
        harness.wait_for(lambda: harness.receive_queue_empty(p.port, peer),
                         10, what="a worker to read the hello's start")
        p.kill(signal.SIGTERM)
        assert p.wait_exit(10) == 0, p.logs()
        raw.settimeout(5)
        assert raw.recv(100) == b""
    mine = harness.last_session_lines(p)
    assert any("SSL handshake stopped: server is shutting down" in ln
               for ln in mine), p.logs()
    assert not any("peer closed" in ln for ln in mine), mine


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
    # no certificate was asked for: no verification result, as NGINX
    assert "Auth-SSL-Verify" not in h

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


def test_handshake_failures_logged(start, certs):
    """NGINX's log words for a peer that leaves during the handshake, and
    a fatal alert."""
    p = start(tls_server(certs, "imap"))
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01")          # a record header, no more
    harness.wait_for(lambda: "peer closed connection in SSL handshake "
                     "while SSL handshaking" in p.log_text(), 10,
                     what="the handshake log line")
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as raw:
        raw.sendall(b"a LOGIN alice x\r\n")   # plaintext on a TLS port
        raw.settimeout(10)
        try:
            while raw.recv(4096):
                pass
        except ConnectionResetError:
            pass
    harness.wait_for(lambda: p.log_text().count("SSL handshake failed") >= 1,
                     10, what="a handshake failure")
    # TLS 1.3 with the greeting sent early: a client that leaves before its
    # Finished failed its handshake all the same.  It reads the greeting
    # first, so that its close is a FIN (unread bytes would make it a
    # reset); a reset is told with the system's reason, not GnuTLS's
    # "Error in the pull function."
    def new_lines(mark, *words):
        def found():
            text = p.log_text()[mark:]
            return any(w in text for w in words) and text
        return found

    for leave, words in ((WithheldFinished.close,
                          "peer closed connection in SSL handshake while"),
                         (WithheldFinished.reset,
                          "SSL handshake failed: Connection reset by peer")):
        mark = len(p.log_text())
        client = WithheldFinished(p.port, certs.client_context())
        assert client.read_before_finished(10).startswith(b"* OK")
        leave(client)
        harness.wait_for(new_lines(mark, words), 10, what=words)
    # A client that refuses the certificate: whether postern reads its
    # alert or finds the connection gone while it writes the greeting is a
    # race; either is told in the handshake's words, never as an ordinary
    # close.
    mark = len(p.log_text())
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            ssl.create_default_context().wrap_socket(   # the test CA unknown
                raw, server_hostname="localhost")
    harness.wait_for(new_lines(mark, "SSL handshake failed",
                               "peer closed connection in SSL handshake"),
                     10, what="the refused certificate's handshake failure")
    assert "client closed connection" not in p.log_text()[mark:], p.logs()


def imaps_client(port, certs, login):
    """An implicit-TLS IMAP connection past the greeting (and logged in as
    alice when login): the TLS socket and a reader on it."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    c = certs.client_context().wrap_socket(raw, server_hostname="localhost")
    f = c.makefile("rb")
    assert f.readline().startswith(b"* OK")
    if login:
        c.sendall(b"a LOGIN alice %s\r\n" % PW["alice"].encode())
        for _ in range(20):
            if f.readline().startswith(b"a OK"):
                break
        else:
            pytest.fail("no login")
    return c, f


def _bogus_record(tls_sock):
    """Write an application-data record no key can decrypt, under the TLS
    layer of an established connection."""
    os.write(tls_sock.fileno(), b"\x17\x03\x03\x00\x20" + b"\x5a" * 32)


@pytest.mark.parametrize("when", ["before login", "in the relay"])
def test_bad_record_logged_with_its_session(start, certs, dovecot, when):
    """A record that fails to decrypt ends the session with GnuTLS's reason
    in a line that names the session and the client (not a bare fd)."""
    p = start(tls_server(certs, "imap"), log_level="info")
    c, f = imaps_client(p.port, certs, login=when == "in the relay")
    with c, f:
        _bogus_record(c)
        c.settimeout(10)
        try:
            while c.recv(4096):
                pass
        except (ssl.SSLError, OSError):
            pass
    if when == "before login":
        pattern = (r"\[info\] \d+#\d+: \*\d+ client read failed: SSL "
                   r"reading failed: .*client: 127\.0\.0\.1")
    else:
        pattern = (r"\[info\] \d+#\d+: \*\d+ proxied session done, "
                   r"client: 127\.0\.0\.1, .*reason=client read error "
                   r"\(SSL reading failed: [^)]+\)")
    harness.wait_for(lambda: re.search(pattern, p.log_text()), 10,
                     what="the log line")
    assert not re.search(r"SSL .*, fd \d+", p.log_text())


def test_reset_logged_with_the_system_reason(start, certs, dovecot):
    """A client that resets its TLS connection in the relay: the summary
    gives the system's reason, as for a plain connection."""
    p = start(tls_server(certs, "imap"), log_level="info")
    c, f = imaps_client(p.port, certs, login=True)
    f.close()
    harness.close_with_reset(c)
    harness.wait_for(lambda: "reason=client read error (SSL reading failed: "
                     "Connection reset by peer)" in p.log_text(), 10,
                     what="the session's summary")


class BioClient:
    """A TLS client over ssl.MemoryBIO, so that the test alone decides
    what reaches the socket: a close_notify without waiting for the
    server's (SSLSocket.unwrap() waits), or a bare FIN (.sock)."""

    def __init__(self, port, ctx):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out,
                                server_hostname="localhost")
        self.buf = b""
        self._step(self.tls.do_handshake)

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _step(self, fn, *args):
        """fn(*args), feeding it from the socket until it needs no more."""
        for _ in range(1000):
            try:
                r = fn(*args)
                self._flush()
                return r
            except ssl.SSLWantReadError:
                self._flush()
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("postern closed the connection")
                self.inc.write(data)
        raise AssertionError("TLS call %r never completed" % fn)

    def send(self, data):
        self._step(self.tls.write, data)

    def readline(self):
        while b"\n" not in self.buf:
            self.buf += self._step(self.tls.read, 65536)
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def close_notify(self):
        """Send close_notify; the TCP connection stays open both ways."""
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass                # the server's own close_notify: not awaited
        self._flush()


def bio_login_to(fb, p, certs):
    """A BioClient logged in through postern p to the fake backend fb."""
    c = BioClient(p.port, certs.client_context())
    assert c.readline().startswith(b"* OK")
    c.send(b"a LOGIN dave dave-pw\r\n")
    assert c.readline() == b"* CAPABILITY IMAP4rev1 FAKE\r\n"
    assert c.readline() == b"a OK logged in\r\n"
    return c


def test_reset_after_close_notify(start, certs):
    """close_notify (a TLS half-close, passed on), then a reset, while the
    backend keeps its side open: the session ends at once as the client's
    error, not after proxy_timeout (poll() reports the reset on every call
    and a side at EOF reads nothing that would find it)."""
    with FakeBackend("hold") as fb:
        p = start(tls_server(certs, "imap", proxy_timeout="60s"),
                  auth=dave_at(fb))
        c = bio_login_to(fb, p, certs)
        try:
            c.close_notify()
            assert fb.eof_seen.wait(10), "the half-close was not passed on"
        finally:
            harness.close_with_reset(c.sock)
        line = harness.summary_line(p)
    assert "reason=client connection error (Connection reset by peer) " \
        "bytes_in=0 " in line, line


def test_records_before_a_reset_reach_the_backend(start, certs):
    """A TLS client sends a few records and resets the connection at
    once: the relay reads them record by record, meets the reset after
    the last one, and still passes on what it read before ending the
    session as the client's read error.  (postern is stopped while the client
    sends and resets, so that the reset is queued before the relay
    reads.)"""
    records = [b"x%d LAST WORDS\r\n" % i for i in range(5)]
    with FakeBackend("hold") as fb:
        p = start(tls_server(certs, "imap", proxy_timeout="60s"),
                  auth=dave_at(fb))
        c = bio_login_to(fb, p, certs)
        p.kill(signal.SIGSTOP)
        try:
            for r in records:
                c.tls.write(r)          # one record each
            # in one send, so that Nagle's algorithm holds none back (the
            # reset would discard what is still in the client's queue)
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c._flush()
            harness.close_with_reset(c.sock)
        finally:
            p.kill(signal.SIGCONT)
        line = harness.summary_line(p)
        harness.wait_for(lambda: fb.received[0].endswith(b"".join(records)),
                         5, what="the records at the backend: %r"
                         % fb.received[0][-100:])
    # the same reason as a reset with nothing before it
    assert "reason=client read error (SSL reading failed: Connection reset " \
        "by peer) bytes_in=%d " % len(b"".join(records)) in line, line


def test_fin_without_close_notify_ends_the_session(start, certs):
    """A TLS client that ends with a bare FIN has closed entirely (GnuTLS
    will not write to it again): what it sent reaches the backend, and the
    session ends, instead of a half-close whose answer fails to be written
    ("client write error")."""
    with FakeBackend("eofreply") as fb:
        p = start(tls_server(certs, "imap", proxy_timeout="60s"),
                  auth=dave_at(fb))
        c = bio_login_to(fb, p, certs)
        try:
            c.send(b"x LAST WORDS\r\n")
            c.sock.shutdown(socket.SHUT_WR)
            line = harness.summary_line(p)
        finally:
            c.sock.close()
        harness.wait_for(lambda: fb.received[0].endswith(b"x LAST WORDS\r\n"),
                         5, what="the last bytes at the backend")
    assert "reason=client closed (without close_notify) bytes_in=14 " \
        in line, line


def test_bytes_dropped_for_a_gone_client_are_no_activity(start, certs):
    """A TLS client sends more than the backend's socket takes, then ends
    with a bare FIN: it is gone (nothing may be written to it), and what
    it sent waits for a backend that no longer reads but keeps talking.
    The backend's lines are read only to be dropped; that is no activity,
    so proxy_timeout ends the session instead of the chatter keeping it
    as long as the backend likes."""
    with FakeBackend("chatter") as fb:
        p = start(tls_server(certs, "imap", proxy_timeout="1s",
                             proxy_buffer="32m"),
                  auth=dave_at(fb))
        c = bio_login_to(fb, p, certs)
        try:
            # more than the backend's receive buffer and postern's send
            # buffer (4 MiB at most, tcp_wmem) hold, less than the relay's
            # buffer: postern reads all of it and the FIN, and cannot pass
            # the FIN on
            c.send(b"x" * (16 << 20))
            c.sock.shutdown(socket.SHUT_WR)
            chatted = fb.chatted
            # the client keeps its socket open (a close() with the chatter
            # unread would be a reset, which ends the session by itself)
            line = harness.summary_line(p, timeout=15)
            # the backend talked on (every 50 ms) through proxy_timeout's
            # second; once the session ended its sends fail
            assert fb.chatted - chatted >= 10, \
                "the backend stopped talking: %d lines: %s" \
                % (fb.chatted - chatted, line)
        finally:
            c.sock.close()
    assert "reason=proxy_timeout " in line, line
    # and NGINX's line for it before the summary
    assert re.search(r"client timed out \(110: Connection timed out\) while "
                     r"proxying, client: 127\.0\.0\.1, server: ",
                     p.log_text()), p.log_text()


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
    # as NGINX marks a session that went through STARTTLS
    assert re.search(r"client logged in, client: 127\.0\.0\.1 using "
                     r"starttls, server: 127\.0\.0\.1:%d, " % p.port,
                     p.log_text()), p.log_text()
    assert re.search(r"proxied session done, client: 127\.0\.0\.1 using "
                     r"starttls, ", harness.summary_line(p))


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
            b"USER bob\r\n", lambda ln: ln == b"+OK\r\n")
    # the answer to CAPA would be "+OK Capability list follows"


def test_starttls_injection_smtp(start, certs):
    p = start(tls_server(certs, "smtp", ssl_listen=False, starttls="on"))
    # RSET would be answered "250 2.0.0 OK"; after STARTTLS the session is
    # reset, so the probe NOOP gives "250 2.0.0 OK" too: use HELO instead
    _inject(certs, p.port, b"220", b"STARTTLS\r\nRSET\r\n",
            lambda ln: ln.startswith(b"220 "),
            b"HELO probe.example\r\n",
            lambda ln: ln.startswith(b"250 ")
            and not ln.startswith(b"250 2.0.0"))


# --------------------------------------------------------------------------
# curl, openssl s_client and gnutls-cli

def curl(*args, timeout=30):
    r = subprocess.run(["curl", "-sS", "--max-time", "20"] + list(args),
                       capture_output=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


@pytest.fixture
def curl_ok():
    if harness.missing("curl"):
        pytest.skip("curl is not installed")


def test_curl_imaps_pop3s_smtps(start, certs, dovecot, curl_ok):
    msg = one_message(dovecot, "alice", "curl implicit")
    p = start(tls_server(certs, "imap"), tls_server(certs, "pop3"),
              tls_server(certs, "smtp"))
    imap, pop3, smtp = p.ports
    ca = ["--cacert", certs.path("ca.pem")]
    rc, out, err = curl(*ca, "-u", "alice:" + PW["alice"],
                        "imaps://localhost:%d/INBOX;MAILINDEX=1" % imap)
    assert rc == 0, err
    assert out == msg
    rc, out, err = curl(*ca, "-u", "alice:" + PW["alice"],
                        "pop3s://localhost:%d/1" % pop3)
    assert rc == 0, err
    assert out == msg
    dovecot.clear("bob")
    mail = harness.make_message("curl smtps", to="bob@example.test")
    r = subprocess.run(["curl", "-sS", "--max-time", "20"] + ca +
                       ["-u", "alice:" + PW["alice"],
                        "--mail-from", "alice@example.test",
                        "--mail-rcpt", "bob@example.test", "-T", "-",
                        "smtps://localhost:%d" % smtp],
                       input=mail, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"Subject: curl smtps" in dovecot.wait_messages("bob", 1, 30)[0]


def test_curl_ssl_reqd_starttls(start, certs, dovecot, curl_ok):
    msg = one_message(dovecot, "alice", "curl starttls")
    p = start(tls_server(certs, "imap", ssl_listen=False, starttls="only"),
              tls_server(certs, "pop3", ssl_listen=False, starttls="on"),
              tls_server(certs, "smtp", ssl_listen=False, starttls="on"))
    imap, pop3, smtp = p.ports
    ca = ["--cacert", certs.path("ca.pem"), "--ssl-reqd"]
    rc, out, err = curl(*ca, "-u", "alice:" + PW["alice"],
                        "imap://localhost:%d/INBOX;MAILINDEX=1" % imap)
    assert rc == 0, err
    assert out == msg
    rc, out, err = curl(*ca, "-u", "alice:" + PW["alice"],
                        "pop3://localhost:%d/1" % pop3)
    assert rc == 0, err
    assert out == msg
    dovecot.clear("bob")
    mail = harness.make_message("curl smtp starttls", to="bob@example.test")
    r = subprocess.run(["curl", "-sS", "--max-time", "20"] + ca +
                       ["-u", "alice:" + PW["alice"],
                        "--mail-from", "alice@example.test",
                        "--mail-rcpt", "bob@example.test", "-T", "-",
                        "smtp://localhost:%d" % smtp],
                       input=mail, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    got = dovecot.wait_messages("bob", 1, 30)
    assert b"Subject: curl smtp starttls" in got[0]


def converse(argv, lines, until, timeout=20):
    """Run an interactive TLS client: send each (regex, line) pair's line
    once the output so far matches its regex (after the previous line was
    sent), keep stdin open until `until` (a regex) matches too, then close
    stdin and read to the end.  Returns (returncode, output)."""
    import select
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out = b""
    mark = 0                    # a marker must appear after this offset
    deadline = time.monotonic() + timeout
    todo = list(lines)
    eof = False

    def read_some(wait):
        nonlocal out, eof
        r, _w, _x = select.select([p.stdout], [], [], wait)
        if r:
            data = os.read(p.stdout.fileno(), 65536)
            if data:
                out += data
            else:
                eof = True

    try:
        while time.monotonic() < deadline and not eof:
            if todo:
                m = re.search(todo[0][0].encode(), out[mark:])
                if m:
                    mark += m.end()
                    p.stdin.write(todo.pop(0)[1].encode())
                    p.stdin.flush()
                    continue
            elif re.search(until.encode(), out[mark:]):
                break
            read_some(0.2)
        try:
            p.stdin.close()
        except BrokenPipeError:
            pass
        end = time.monotonic() + 10
        while not eof and time.monotonic() < end:
            read_some(0.2)
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    return p.returncode, out.decode("utf-8", "replace")


IMAP_SESSION = [(r"\* OK", "a LOGIN alice %s\r\n" % PW["alice"]),
                (r"a OK", "b SELECT INBOX\r\n"),
                (r"b OK", "c LOGOUT\r\n")]
POP3_SESSION = [(r"\+OK", "USER bob\r\n"),
                (r"\+OK", "PASS %s\r\n" % PW["bob"]),
                (r"\+OK Logged in", "STAT\r\n"),
                (r"\+OK \d+ \d+", "QUIT\r\n")]
SMTP_SESSION = [(r"250[ -]", "EHLO client.example\r\n"),
                (r"250 ", "AUTH PLAIN %s\r\n" % base64.b64encode(
                    b"\0alice\0" + PW["alice"].encode()).decode()),
                (r"235 ", "QUIT\r\n")]


@pytest.mark.parametrize("proto", ["imap", "pop3", "smtp"])
def test_openssl_s_client_starttls(start, certs, dovecot, proto):
    p = start(tls_server(certs, proto, ssl_listen=False, starttls="on"))
    session = {"imap": IMAP_SESSION, "pop3": POP3_SESSION,
               "smtp": SMTP_SESSION}[proto]
    # s_client did the plaintext part (for SMTP: EHLO, due again now)
    session = [(r"Verify return code", session[0][1])] + session[1:]
    done = {"imap": r"c OK", "pop3": r"Logging out",
            "smtp": r"221 "}[proto]
    rc, out = converse(["openssl", "s_client", "-connect",
                        "127.0.0.1:%d" % p.port, "-servername", "localhost",
                        "-starttls", proto, "-CAfile", certs.path("ca.pem"),
                        "-verify_return_error", "-ign_eof"],
                       session, done)
    assert "Verify return code: 0 (ok)" in out, out
    assert {"imap": "a OK", "pop3": "+OK Logged in",
            "smtp": "235 "}[proto] in out, out


@pytest.mark.parametrize("proto", ["imap", "pop3", "smtp"])
def test_gnutls_cli_starttls(start, certs, dovecot, proto):
    if harness.missing("gnutls-cli"):
        pytest.skip("gnutls-cli is not installed")
    p = start(tls_server(certs, proto, ssl_listen=False, starttls="on"))
    session = {"imap": IMAP_SESSION, "pop3": POP3_SESSION,
               "smtp": SMTP_SESSION}[proto]
    session = [(r"Handshake was completed", session[0][1])] + session[1:]
    done = {"imap": r"c OK", "pop3": r"Logging out",
            "smtp": r"221 "}[proto]
    rc, out = converse(["gnutls-cli", "--starttls-proto=" + proto,
                        "--x509cafile", certs.path("ca.pem"),
                        "-p", str(p.port), "localhost"],
                       session, done)
    assert "Handshake was completed" in out, out
    assert {"imap": "a OK", "pop3": "+OK Logged in",
            "smtp": "235 "}[proto] in out, out


# --------------------------------------------------------------------------
# certificates, protocols, ciphers

def test_rsa_and_ecdsa_pairs(start, certs):
    p = start(tls_server(certs, "imap", pairs=("rsa", "ecdsa")))
    ca = ["-CAfile", certs.path("ca.pem"), "-verify_return_error"]
    rc, out = s_client(p.port, ca + ["-tls1_3", "-sigalgs",
                                     "ECDSA+SHA256"], LOGOUT)
    assert "Server public key is 256 bit" in out, out
    assert "Peer signature type: ECDSA" in out, out
    rc, out = s_client(p.port, ca + ["-tls1_2", "-cipher",
                                     "ECDHE-ECDSA-AES128-GCM-SHA256"],
                       LOGOUT)
    assert "Server public key is 256 bit" in out, out
    assert "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256" in out, out
    rc, out = s_client(p.port, ca + ["-tls1_3", "-sigalgs",
                                     "rsa_pss_rsae_sha256"], LOGOUT)
    assert "Server public key is 2048 bit" in out, out
    rc, out = s_client(p.port, ca + ["-tls1_2", "-cipher",
                                     "ECDHE-RSA-AES256-GCM-SHA384"],
                       LOGOUT)
    assert "Server public key is 2048 bit" in out, out
    assert "Verify return code: 0 (ok)" in out, out


def test_ssl_protocols_tls12_only(start, certs):
    p = start(tls_server(certs, "imap", ssl_protocols=["TLSv1.2"]))
    rc, out = s_client(p.port, ["-tls1_3"], LOGOUT)
    assert rc != 0 and "Cipher is (NONE)" in out, out
    ctx = certs.client_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises((ssl.SSLError, OSError)):
        imaplib.IMAP4_SSL("localhost", p.port, ssl_context=ctx, timeout=10)
    rc, out = s_client(p.port, ["-tls1_2"], LOGOUT)
    assert rc == 0 and "Protocol  : TLSv1.2" in out, out
    assert "* OK" in out, out


def test_ssl_ciphers_openssl_syntax(start, certs):
    p = start(tls_server(certs, "imap", ssl_protocols=["TLSv1.2"],
                         ssl_ciphers="ECDHE-RSA-AES256-GCM-SHA384:!aNULL"))
    rc, out = s_client(p.port, ["-tls1_2", "-cipher",
                                "ECDHE-RSA-AES128-GCM-SHA256"], LOGOUT)
    assert rc != 0 and "Cipher is (NONE)" in out, out
    rc, out = s_client(p.port, ["-tls1_2"], LOGOUT)
    assert "Cipher is ECDHE-RSA-AES256-GCM-SHA384" in out, out
    # HIGH and exclusions: no CBC-SHA1 suites with !SHA1
    p2 = start(tls_server(certs, "imap", ssl_protocols=["TLSv1.2"],
                          ssl_ciphers="HIGH:!aNULL:!MD5:!SHA1"))
    rc, out = s_client(p2.port, ["-tls1_2", "-cipher",
                                 "ECDHE-RSA-AES256-SHA"], LOGOUT)
    assert rc != 0 and "Cipher is (NONE)" in out, out


def refused(port, *args):
    rc, out = s_client(port, list(args), LOGOUT)
    return rc != 0 and "Cipher is (NONE)" in out, out


def negotiated(port, *args):
    """(protocol, cipher suite) of a successful session."""
    rc, out = s_client(port, list(args), LOGOUT)
    assert rc == 0 and "* OK" in out, out
    return (re.search(r"Protocol *: (\S+)", out).group(1),
            re.search(r"Cipher is (\S+)", out).group(1))


def test_ssl_ciphers_exclusions_hold_with_tls13(start, certs):
    """GnuTLS has one cipher list for TLS 1.2 and 1.3: the TLS 1.3 suites
    (on by default) must not bring back for TLS 1.2 a cipher the list
    excludes or does not name; TLS 1.3 goes without it too."""
    p = start(tls_server(certs, "imap",
                         ssl_ciphers="HIGH:!aNULL:!MD5:!CHACHA20"))
    ok, out = refused(p.port, "-tls1_2", "-cipher",
                      "ECDHE-RSA-CHACHA20-POLY1305")
    assert ok, out
    ok, out = refused(p.port, "-tls1_3", "-ciphersuites",
                      "TLS_CHACHA20_POLY1305_SHA256")
    assert ok, out
    assert negotiated(p.port, "-tls1_3") == ("TLSv1.3",
                                             "TLS_AES_256_GCM_SHA384")
    assert negotiated(p.port, "-tls1_2", "-cipher",
                      "ECDHE-RSA-AES256-GCM-SHA384")[0] == "TLSv1.2"

    p = start(tls_server(certs, "imap",
                         ssl_ciphers="HIGH:!aNULL:!MD5:!AES256"))
    ok, out = refused(p.port, "-tls1_2", "-cipher",
                      "ECDHE-RSA-AES256-GCM-SHA384")
    assert ok, out
    ok, out = refused(p.port, "-tls1_3", "-ciphersuites",
                      "TLS_AES_256_GCM_SHA384")
    assert ok, out
    assert negotiated(p.port, "-tls1_3", "-ciphersuites",
                      "TLS_CHACHA20_POLY1305_SHA256")[0] == "TLSv1.3"

    # one suite named: TLS 1.2 gets that one only, TLS 1.3 its cipher
    p = start(tls_server(certs, "imap",
                         ssl_ciphers="ECDHE-RSA-AES128-GCM-SHA256"))
    for other in ("ECDHE-RSA-AES256-GCM-SHA384",
                  "ECDHE-RSA-CHACHA20-POLY1305"):
        ok, out = refused(p.port, "-tls1_2", "-cipher", other)
        assert ok, out
    assert negotiated(p.port, "-tls1_3") == ("TLSv1.3",
                                             "TLS_AES_128_GCM_SHA256")

    # no TLS 1.3 cipher left: TLS 1.3 is off, with a warning at load
    p = start(tls_server(certs, "imap", ssl_ciphers="ECDHE-RSA-AES256-SHA"))
    ok, out = refused(p.port, "-tls1_3")
    assert ok, out
    ok, out = refused(p.port, "-tls1_2", "-cipher",
                      "ECDHE-RSA-AES256-GCM-SHA384")
    assert ok, out
    assert negotiated(p.port) == ("TLSv1.2", "ECDHE-RSA-AES256-SHA")
    assert "TLS 1.3 is off for the server at line" in p.stderr_text()


def test_ssl_ciphers_refused_when_gnutls_cannot_keep_them(postern_config,
                                                          certs):
    # a TLS 1.3 suite named whose cipher TLS 1.2 does not get
    out = check_fails(postern_config, certs, "TLS_AES_128_GCM_SHA256",
                      ssl_ciphers="TLS_AES_128_GCM_SHA256:"
                                  "ECDHE-RSA-AES256-SHA384")
    assert "AES-128-GCM" in out, out
    # an exclusion that the other suites' algorithms would undo
    out = check_fails(postern_config, certs, "excludes ECDHE-RSA-AES256-SHA",
                      ssl_ciphers="ECDHE:!ECDHE-RSA-AES256-SHA")


# --------------------------------------------------------------------------
# resumption

def resume(port, sess, first, extra=()):
    """openssl s_client with -sess_out (first) or -sess_in; returns its
    output.  The session is kept open until the IMAP greeting arrived, so
    that TLS 1.3 tickets (sent after the handshake) are saved."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
            "-servername", "localhost", "-ign_eof",
            "-sess_out" if first else "-sess_in", sess] + list(extra)
    rc, out = converse(argv, [(r"\* OK", "a LOGOUT\r\n")], r"a OK")
    return out


def reused(out):
    m = re.search(r"^(New|Reused), (TLSv[\d.]+)", out, re.M)
    assert m, out
    return m.group(1) == "Reused"


def test_resumption_tickets(start, certs):
    p = start(tls_server(certs, "imap"))
    sess = os.path.join(p.dir, "sess.pem")
    assert not reused(resume(p.port, sess, True))
    assert reused(resume(p.port, sess, False))
    # TLS 1.2 tickets too
    sess12 = os.path.join(p.dir, "sess12.pem")
    assert not reused(resume(p.port, sess12, True, ["-tls1_2"]))
    assert reused(resume(p.port, sess12, False, ["-tls1_2"]))


def test_resumption_builtin_cache_tls12(start, certs):
    p = start(tls_server(certs, "imap", ssl_session_cache="builtin:100",
                         ssl_session_tickets=False))
    sess = os.path.join(p.dir, "sess.pem")
    out = resume(p.port, sess, True, ["-tls1_2", "-no_ticket"])
    assert not reused(out)
    out = resume(p.port, sess, False, ["-tls1_2", "-no_ticket"])
    assert reused(out), out
    # without a cache nothing resumes
    p2 = start(tls_server(certs, "imap", ssl_session_cache="none",
                          ssl_session_tickets=False))
    sess2 = os.path.join(p.dir, "sess2.pem")
    resume(p2.port, sess2, True, ["-tls1_2", "-no_ticket"])
    assert not reused(resume(p2.port, sess2, False,
                             ["-tls1_2", "-no_ticket"]))


def test_resumption_shared_ticket_key(start, certs):
    key = certs.path("ticket.key")
    a = start(tls_server(certs, "imap", ssl_session_ticket_key=key))
    b = start(tls_server(certs, "imap", ssl_session_ticket_key=key))
    c = start(tls_server(certs, "imap"))
    for extra in ([], ["-tls1_2"]):
        sess = os.path.join(a.dir, "sess%d.pem" % len(extra))
        assert not reused(resume(a.port, sess, True, extra))
        assert reused(resume(b.port, sess, False, extra)), extra
        # an instance with its own random key cannot resume it
        assert not reused(resume(c.port, sess, False, extra))


def test_resumption_stays_in_its_server_entry(start, certs):
    """A session from one servers entry does not resume on another, so a
    client certificate check cannot be skipped by resuming."""
    key = certs.path("ticket.key")
    p = start(tls_server(certs, "imap", ssl_session_ticket_key=key),
              tls_server(certs, "imap", ssl_session_ticket_key=key))
    sess = os.path.join(p.dir, "sess.pem")
    assert not reused(resume(p.ports[0], sess, True))
    assert reused(resume(p.ports[0], sess, False))
    assert not reused(resume(p.ports[1], sess, False))


def test_resumption_shared_cache_and_timeout(start, certs):
    """One shared cache for two servers entries: each resumes only its own
    sessions; ssl_session_timeout ends them."""
    cache = dict(ssl_session_cache="shared:TLSIT:1m",
                 ssl_session_tickets=False, ssl_session_timeout=2)
    p = start(tls_server(certs, "imap", **cache),
              tls_server(certs, "imap", **cache))
    opts = ["-tls1_2", "-no_ticket"]
    sess = os.path.join(p.dir, "sess.pem")
    assert not reused(resume(p.ports[0], sess, True, opts))
    assert reused(resume(p.ports[0], sess, False, opts))
    assert not reused(resume(p.ports[1], sess, False, opts))
    time.sleep(3)
    assert not reused(resume(p.ports[0], sess, False, opts))
    # tickets honour the timeout too
    t = start(tls_server(certs, "imap", ssl_session_timeout=2))
    sess = os.path.join(p.dir, "ticket.pem")
    assert not reused(resume(t.port, sess, True))
    assert reused(resume(t.port, sess, False))
    time.sleep(3)
    assert not reused(resume(t.port, sess, False))


# --------------------------------------------------------------------------
# ALPN

def test_alpn(start, certs):
    p = start(tls_server(certs, "imap"), tls_server(certs, "smtp"))
    rc, out = s_client(p.ports[0], ["-alpn", "h2"], LOGOUT)
    assert rc != 0 and "Cipher is (NONE)" in out, out
    rc, out = s_client(p.ports[0], ["-alpn", "h2,imap"], LOGOUT)
    assert "ALPN protocol: imap" in out, out
    assert "* OK" in out
    rc, out = s_client(p.ports[1], ["-alpn", "imap"], b"QUIT\r\n")
    assert rc != 0 and "Cipher is (NONE)" in out, out
    rc, out = s_client(p.ports[1], ["-alpn", "smtp"], b"QUIT\r\n")
    assert "ALPN protocol: smtp" in out, out
    # no ALPN at all is fine
    rc, out = s_client(p.ports[0], [], LOGOUT)
    assert "No ALPN negotiated" in out and "* OK" in out, out


# --------------------------------------------------------------------------
# client certificates

def read_to_close(port, ctx, send=b"", implicit=True, timeout=10):
    """Connect with TLS (implicit, or after IMAP STARTTLS), send `send`,
    return what arrives until the server closes."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if not implicit:
        f = raw.makefile("rb")
        assert f.readline().startswith(b"* OK")
        raw.sendall(b"s STARTTLS\r\n")
        assert f.readline() == b"s OK completed\r\n"
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    data = b""
    try:
        if send:
            tls.sendall(send)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = tls.recv(4096)
            except (ssl.SSLError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
    finally:
        tls.close()
    return data


class WithheldFinished:
    """A TLS 1.3 client that runs its side of the handshake but keeps its
    Finished message back: what the server sends now, it sent before it
    could have verified the client (0.5-RTT data)."""

    def __init__(self, port, ctx):
        self.raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out,
                                server_hostname="localhost")
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.raw.sendall(self.out.read())          # the ClientHello
        while True:                                # the server's flight
            data = self.raw.recv(65536)
            assert data, "server closed during the handshake"
            self.inc.write(data)
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                continue
        self.finished = self.out.read()            # held back
        assert self.tls.version() == "TLSv1.3"

    def read_before_finished(self, seconds):
        """Plaintext the server sent within `seconds` without our Finished."""
        self.raw.settimeout(seconds)
        got = b""
        try:
            while b"\n" not in got:
                try:
                    got += self.tls.read(4096)
                    continue
                except ssl.SSLWantReadError:
                    pass
                data = self.raw.recv(65536)
                if not data:
                    break
                self.inc.write(data)
        except socket.timeout:
            pass
        return got

    def send_finished(self):
        self.raw.settimeout(10)
        self.raw.sendall(self.finished)

    def close(self):
        self.raw.close()

    def reset(self):
        harness.close_with_reset(self.raw)


@pytest.mark.parametrize("proto", ["imap", "pop3", "smtp"])
def test_greeting_travels_with_the_handshake(start, certs, proto):
    """TLS 1.3 implicit TLS: the greeting leaves with the server's
    handshake flight instead of a round trip after it; the client's
    Finished is still checked before postern reads a command."""
    greeting = {"imap": b"* OK", "pop3": b"+OK", "smtp": b"220 "}[proto]
    p = start(tls_server(certs, proto))
    c = WithheldFinished(p.port, certs.client_context())
    try:
        got = c.read_before_finished(10)
        assert got.startswith(greeting), (got, p.logs())
        c.send_finished()
        c.tls.write({"imap": b"a NOOP\r\n", "pop3": b"NOOP\r\n",
                     "smtp": b"NOOP\r\n"}[proto])
        c.raw.sendall(c.out.read())
        reply = c.read_before_finished(10)
        assert reply.startswith({"imap": b"a OK", "pop3": b"+OK",
                                 "smtp": b"250"}[proto]), (reply, p.logs())
    finally:
        c.close()
    assert p.alive()


def test_no_early_greeting_when_a_client_cert_is_asked(start, certs):
    """With ssl_verify_client nothing goes out before the client's
    certificate and Finished have been checked."""
    p = start(verify_server(certs, "imap", verify="optional"))
    c = WithheldFinished(p.port, certs.client_context(cert="client"))
    try:
        assert c.read_before_finished(0.5) == b"", p.logs()
        c.send_finished()
        assert c.read_before_finished(10).startswith(b"* OK"), p.logs()
    finally:
        c.close()


def verify_server(certs, protocol, verify="on", **extra):
    return tls_server(certs, protocol, ssl_verify_client=verify,
                      ssl_client_certificate=certs.path("ca.pem"), **extra)


# NGINX's replies (ngx_mail_{imap,pop3,smtp}_module.c: cert_error, no_cert)
NO_CERT = {"imap": b"* BYE No required SSL certificate\r\n",
           "pop3": b"-ERR No required SSL certificate\r\n",
           "smtp": b"421 4.7.1 No required SSL certificate\r\n"}
CERT_ERROR = {"imap": b"* BYE SSL certificate error\r\n",
              "pop3": b"-ERR SSL certificate error\r\n",
              "smtp": b"421 4.7.1 SSL certificate error\r\n"}


@pytest.mark.parametrize("proto", ["imap", "pop3", "smtp"])
@pytest.mark.parametrize("tls13", [True, False], ids=["tls13", "tls12"])
def test_client_cert_refused(start, certs, proto, tls13):
    p = start(verify_server(certs, proto))
    ctx = certs.client_context()
    if not tls13:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    assert read_to_close(p.port, ctx) == NO_CERT[proto]
    ctx = certs.client_context(cert="other_client")
    if not tls13:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    assert read_to_close(p.port, ctx) == CERT_ERROR[proto]
    log = p.log_text()
    assert "client sent no required SSL certificate" in log
    # OpenSSL's code and words, as NGINX logs them
    assert ("client SSL certificate verify error: (21:unable to verify the "
            "first certificate)") in log


@pytest.mark.parametrize("tls13", [True, False], ids=["tls13", "tls12"])
def test_server_cert_refused_as_client_cert(start, certs, dovecot, authsvc,
                                            tls13):
    """A certificate whose extended key usage is serverAuth only (rsa.pem,
    CN=localhost, from the clients' CA) is not a client certificate: as
    OpenSSL's ssl_client purpose, it fails like any failed verification."""
    def ctx():
        c = certs.client_context(cert="rsa")
        if not tls13:
            c.maximum_version = ssl.TLSVersion.TLSv1_2
        return c
    for verify in ("on", "optional"):
        p = start(verify_server(certs, "imap", verify=verify,
                                imap_auth=["plain", "external"]))
        assert read_to_close(p.port, ctx()) == CERT_ERROR["imap"]
        assert ("client SSL certificate verify error: (26:unsuitable "
                "certificate purpose)") in p.log_text()
    # optional_no_ca: the auth service is told why
    p = start(verify_server(certs, "imap", verify="optional_no_ca"))
    before = len(authsvc.requests())
    c = imaplib.IMAP4_SSL("localhost", p.port, timeout=10,
                          ssl_context=ctx())
    assert c.login("alice", PW["alice"])[0] == "OK"
    c.logout()
    h = authsvc.requests()[before]["headers"]
    assert h["Auth-SSL-Verify"] == "FAILED:unsuitable certificate purpose"
    assert h["Auth-SSL-Subject"] == "CN=localhost,O=postern test"


def test_client_cert_refused_after_starttls(start, certs):
    p = start(verify_server(certs, "imap", ssl_listen=False, starttls="on"))
    assert read_to_close(p.port, certs.client_context(),
                         implicit=False) == NO_CERT["imap"]
    assert read_to_close(p.port, certs.client_context(cert="other_client"),
                         implicit=False) == CERT_ERROR["imap"]


def cert_facts(certs, name):
    def x509(*args):
        return subprocess.run(["openssl", "x509", "-in",
                               certs.path(name + ".pem"), "-noout"]
                              + list(args), capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()
    serial = x509("-serial").split("=", 1)[1]
    fp = x509("-fingerprint", "-sha1").split("=", 1)[1]
    return serial, fp.replace(":", "").lower()


def test_client_cert_accepted_headers(start, certs, dovecot, authsvc):
    import urllib.parse
    msg = one_message(dovecot, "alice", "client cert")
    p = start(verify_server(certs, "imap", auth_http_pass_client_cert=True))
    before = len(authsvc.requests())
    c = imaplib.IMAP4_SSL("localhost", p.port, timeout=10,
                          ssl_context=certs.client_context(cert="client"))
    try:
        assert c.login("alice", PW["alice"])[0] == "OK"
        assert fetch_first(c) == msg
    finally:
        c.logout()
    h = authsvc.requests()[before]["headers"]
    serial, fp = cert_facts(certs, "client")
    assert h["Auth-SSL-Verify"] == "SUCCESS"
    assert h["Auth-SSL-Subject"] == "CN=alice,O=postern test"
    assert h["Auth-SSL-Issuer"] == "CN=postern test CA,O=postern test"
    assert h["Auth-SSL-Serial"] == serial
    assert h["Auth-SSL-Fingerprint"] == fp
    pem = urllib.parse.unquote(h["Auth-SSL-Cert"])
    with open(certs.path("client.pem")) as f:
        want = f.read()
    assert pem.split() == want.split()


def test_client_cert_subject_as_openssl_writes_it(start, certs, dovecot,
                                                   authsvc):
    """Auth-SSL-Subject and -Issuer in the form NGINX sends, OpenSSL's
    RFC 2253 text: emailAddress, GN and SN by those names, 8-bit bytes as
    \\XX, no raw UTF-8 in the header."""
    p = start(verify_server(certs, "imap"))
    before = len(authsvc.requests())
    c = imaplib.IMAP4_SSL("localhost", p.port, timeout=10,
                          ssl_context=certs.client_context(cert="rich_client"))
    c.login("alice", PW["alice"])
    c.logout()
    h = authsvc.requests()[before]["headers"]

    def rfc2253(what):
        out = subprocess.run(
            ["openssl", "x509", "-in", certs.path("rich_client.pem"),
             "-noout", "-" + what, "-nameopt", "RFC2253"],
            capture_output=True, text=True, timeout=30, check=True).stdout
        return out.strip().split("=", 1)[1]
    assert h["Auth-SSL-Subject"] == rfc2253("subject")
    assert "emailAddress=alice@example.test" in h["Auth-SSL-Subject"]
    assert "\\C3\\BC" in h["Auth-SSL-Subject"]
    assert h["Auth-SSL-Issuer"] == rfc2253("issuer")


def test_client_cert_optional(start, certs, dovecot, authsvc):
    p = start(verify_server(certs, "imap", verify="optional"))
    before = len(authsvc.requests())
    c = imaplib.IMAP4_SSL("localhost", p.port, timeout=10,
                          ssl_context=certs.client_context())
    assert c.login("alice", PW["alice"])[0] == "OK"
    c.logout()
    h = authsvc.requests()[before]["headers"]
    assert h["Auth-SSL-Verify"] == "NONE"
    assert "Auth-SSL-Subject" not in h and "Auth-SSL-Cert" not in h
    # a certificate is checked if sent, as by NGINX
    assert read_to_close(p.port, certs.client_context(
        cert="other_client")) == CERT_ERROR["imap"]
    # optional_no_ca: an unknown CA is told to the auth service
    p2 = start(verify_server(certs, "imap", verify="optional_no_ca"))
    before = len(authsvc.requests())
    c = imaplib.IMAP4_SSL("localhost", p2.port, timeout=10,
                          ssl_context=certs.client_context(
                              cert="other_client"))
    assert c.login("alice", PW["alice"])[0] == "OK"
    c.logout()
    h = authsvc.requests()[before]["headers"]
    assert h["Auth-SSL-Verify"].startswith("FAILED:"), h
    assert h["Auth-SSL-Issuer"] == "CN=another CA,O=postern test"


@pytest.mark.parametrize("proto", ["imap", "pop3", "smtp"])
def test_crl(start, certs, dovecot, proto):
    """ssl_crl: a revoked client certificate is refused with NGINX's reply
    and log line; one the CRL does not list logs in."""
    crl = certs.crl("revoked_client", revoke=["client"])
    p = start(verify_server(certs, proto, ssl_crl=crl,
                            imap_auth=["plain", "external"],
                            pop3_auth=["plain", "external"],
                            smtp_auth=["plain", "external"]))
    assert read_to_close(p.port, certs.client_context(cert="client")) \
        == CERT_ERROR[proto]
    assert ("client SSL certificate verify error: (23:certificate "
            "revoked)") in p.log_text()
    ctx = certs.client_context(cert="rich_client")
    if proto == "imap":
        c = imaplib.IMAP4_SSL("localhost", p.port, timeout=10,
                              ssl_context=ctx)
        assert c.login("alice", PW["alice"])[0] == "OK"
        c.logout()
    elif proto == "pop3":
        c = poplib.POP3_SSL("localhost", p.port, timeout=10, context=ctx)
        assert c.user("alice").startswith(b"+OK")
        assert c.pass_(PW["alice"]).startswith(b"+OK")
        c.quit()
    else:
        c = smtplib.SMTP_SSL("localhost", p.port, timeout=10, context=ctx)
        assert c.ehlo()[0] == 250
        c.quit()


@pytest.mark.parametrize("cert,reason", [
    ("other_client", "unable to verify the first certificate"),
    ("other_chain", "self-signed certificate in certificate chain"),
    ("selfsigned_client", "self-signed certificate"),
])
def test_untrusted_chain_reasons(start, certs, dovecot, authsvc, cert,
                                 reason):
    """Under optional_no_ca, Auth-SSL-Verify says why a chain reaches no
    trusted CA in OpenSSL's words, as NGINX passes them on."""
    p = start(verify_server(certs, "imap", verify="optional_no_ca"))
    before = len(authsvc.requests())
    c = imaplib.IMAP4_SSL("localhost", p.port, timeout=10,
                          ssl_context=certs.client_context(cert=cert))
    assert c.login("alice", PW["alice"])[0] == "OK"
    c.logout()
    h = authsvc.requests()[before]["headers"]
    assert h["Auth-SSL-Verify"] == "FAILED:" + reason


def test_external_auth(start, certs, dovecot, authsvc):
    msg = one_message(dovecot, "alice", "external")
    p = start(verify_server(certs, "imap", verify="optional",
                            imap_auth=["plain", "external"]))
    c = imaplib.IMAP4_SSL("localhost", p.port, timeout=10,
                          ssl_context=certs.client_context(cert="client"))
    try:
        assert "AUTH=EXTERNAL" in c.capabilities
        before = len(authsvc.requests())
        typ, _ = c.authenticate("EXTERNAL", lambda _chal: b"alice")
        assert typ == "OK"
        assert fetch_first(c) == msg
        h = authsvc.requests()[before]["headers"]
        assert h["Auth-Method"] == "external"
        assert h["Auth-SSL-Verify"] == "SUCCESS"
        assert "Auth-Pass" not in h or h["Auth-Pass"] == ""
    finally:
        c.logout()
    # without a certificate, EXTERNAL fails
    c = imaplib.IMAP4_SSL("localhost", p.port, timeout=10,
                          ssl_context=certs.client_context())
    try:
        with pytest.raises(imaplib.IMAP4.error):
            c.authenticate("EXTERNAL", lambda _chal: b"alice")
    finally:
        c.shutdown()


# --------------------------------------------------------------------------
# volume: a 20 MB message, 200 parallel sessions

def big_message(size):
    """A message of about size bytes, CRLF lines of varied content."""
    import random
    rnd = random.Random(20)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    lines = []
    total = 0
    while total < size:
        n = rnd.randint(1, 998)
        ln = bytes(rnd.choice(alphabet) for _ in range(16)) * (n // 16 + 1)
        ln = ln[:n] + b"\r\n"
        lines.append(ln)
        total += len(ln)
    return harness.make_message("twenty megabytes", body=b"".join(lines))


def test_20mb_message_over_imaps(start, certs, dovecot):
    msg = big_message(20 * 1024 * 1024)
    dovecot.put_message("erin", msg)
    p = start(tls_server(certs, "imap"))
    c = imaplib.IMAP4_SSL("localhost", p.port, timeout=60,
                          ssl_context=certs.client_context())
    try:
        c.login("erin", PW["erin"])
        got = fetch_first(c)
    finally:
        c.logout()
    assert len(got) == len(msg)
    assert got == msg


def test_200_parallel_tls_sessions(start, certs, dovecot):
    msg = one_message(dovecot, "alice", "parallel")
    p = start(tls_server(certs, "imap"),
              top={"worker_threads": 32, "relay_threads": 2})
    ctx = certs.client_context()
    n = 200

    def one(i):
        c = imaplib.IMAP4_SSL("localhost", p.port, ssl_context=ctx,
                              timeout=60)
        try:
            c.login("alice", PW["alice"])
            got = fetch_first(c)
        finally:
            c.logout()
        return got == msg

    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
        results = list(ex.map(one, range(n), timeout=240))
    assert results.count(True) == n
    assert p.log_text().count("client logged in") == n


# --------------------------------------------------------------------------
# reload and configuration errors

def peer_fingerprint(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    import hashlib
    return ":".join("%02X" % b for b in hashlib.sha256(der).digest())


def test_reload_picks_up_renewed_certificate(start, certs):
    d = tempfile.mkdtemp(prefix="postern-renew-")
    try:
        cert, key = os.path.join(d, "mail.pem"), os.path.join(d, "mail.key")
        shutil.copy(certs.path("rsa.pem"), cert)
        shutil.copy(certs.path("rsa.key"), key)
        s = tls_server(certs, "imap")
        s.update(ssl_certificate=cert, ssl_certificate_key=key)
        p = start(s)
        old, new = certs.fingerprint("rsa"), certs.fingerprint("rsa2")
        assert peer_fingerprint(p.port) == old
        # renewed as certbot does: new files in place, then a reload
        shutil.copy(certs.path("rsa2.key"), key + ".tmp")
        shutil.copy(certs.path("rsa2.pem"), cert + ".tmp")
        os.rename(key + ".tmp", key)
        os.rename(cert + ".tmp", cert)
        assert peer_fingerprint(p.port) == old      # not before the reload
        p.kill(signal.SIGHUP)
        harness.wait_for(lambda: peer_fingerprint(p.port) == new, 15,
                         what="the renewed certificate after SIGHUP")
        assert p.alive()
        # a reload with a broken key keeps the running certificate
        with open(key, "w") as f:
            f.write("not a key\n")
        p.kill(signal.SIGHUP)
        harness.wait_for(lambda: key in p.log_text(), 15,
                         what="the reload error naming the key")
        assert p.alive()
        assert peer_fingerprint(p.port) == new
    finally:
        shutil.rmtree(d, ignore_errors=True)


def check_fails(postern_config, certs, needle, **settings):
    s = tls_server(certs, "imap")
    s.update(settings)
    nowhere = "127.0.0.1:%d" % harness.free_port()
    p = postern_config([s], auth=[("alice", "{PLAIN}x", nowhere)])
    r = p.run("-t")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert needle in out, out
    return out


def test_config_errors_name_the_file(postern_config, certs):
    missing = os.path.join(certs.dir, "missing.key")
    check_fails(postern_config, certs, missing,
                ssl_certificate_key=missing)
    out = check_fails(postern_config, certs, certs.path("ecdsa.key"),
                      ssl_certificate_key=certs.path("ecdsa.key"))
    assert "does not match" in out
    out = check_fails(postern_config, certs, certs.path("wrong.pass"),
                      ssl_certificate_key=certs.path("enc.key"),
                      ssl_password_file=certs.path("wrong.pass"))
    out = check_fails(postern_config, certs, certs.path("enc.key"),
                      ssl_certificate_key=certs.path("enc.key"))
    assert "ssl_password_file" in out
    out = check_fails(postern_config, certs, "brainpoolP512t1",
                      ssl_ecdh_curve="X25519:brainpoolP512t1")
    assert "ssl_ecdh_curve" in out
    out = check_fails(postern_config, certs, "ssl_ciphers",
                      ssl_ciphers="HIGH:!aNULL:NOSUCHCIPHER")
    assert "NOSUCHCIPHER" in out


def test_sslv3_warned_and_left_out(postern_config, certs):
    s = tls_server(certs, "imap", ssl_protocols=["SSLv3", "TLSv1.2"])
    nowhere = "127.0.0.1:%d" % harness.free_port()
    p = postern_config([s], auth=[("alice", "{PLAIN}x", nowhere)])
    r = p.run("-t")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "SSLv3" in out and "warn" in out, out


def test_password_file_and_curve(start, certs):
    """The right password (second line of the file) unlocks the key; an
    ECDH curve limits the key exchange."""
    s = tls_server(certs, "imap", ssl_password_file=certs.path("enc.pass"),
                   ssl_ecdh_curve="secp384r1")
    s["ssl_certificate_key"] = certs.path("enc.key")
    p = start(s)
    rc, out = s_client(p.port, ["-CAfile", certs.path("ca.pem")], LOGOUT)
    assert "Verify return code: 0 (ok)" in out, out
    assert re.search(r"Server Temp Key: ECDH, (P-384|secp384r1)", out), out
    rc, out = s_client(p.port, ["-groups", "X25519"], LOGOUT)
    assert rc != 0 and "Cipher is (NONE)" in out, out


# --------------------------------------------------------------------------
# the relay with TLS: uploads, a slow reader, close_notify

def test_append_over_imaps(start, certs, dovecot):
    """Client to backend through TLS records in the relay."""
    msg = big_message(8 * 1024 * 1024)
    p = start(tls_server(certs, "imap"))
    c = imaplib.IMAP4_SSL("localhost", p.port, timeout=60,
                          ssl_context=certs.client_context())
    try:
        c.login("dave", PW["dave"])
        typ, data = c.append("INBOX", None, None, msg)
        assert typ == "OK", data
    finally:
        c.logout()
    got = dovecot.messages("dave")
    # Dovecot's maildir keeps LF line ends
    assert len(got) == 1 and got[0] == msg.replace(b"\r\n", b"\n")


def tls_imap(port, certs, **kw):
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    tls = certs.client_context().wrap_socket(raw, server_hostname="localhost",
                                             **kw)
    return tls


def read_until(tls, buf, marker, limit):
    while marker not in buf:
        chunk = tls.recv(65536)
        assert chunk, "closed before %r" % marker
        buf += chunk
        assert len(buf) <= limit
    return buf


def test_slow_reader_over_imaps(start, certs, dovecot):
    """A client that stops reading: the relay's TLS writes to it meet
    EAGAIN and must resume with the same bytes."""
    msg = big_message(4 * 1024 * 1024)
    dovecot.put_message("carol", msg)
    p = start(tls_server(certs, "imap", proxy_buffer="16k"))
    tls = tls_imap(p.port, certs)
    try:
        buf = read_until(tls, b"", b"\r\n", 4096)
        tls.sendall(b"a LOGIN carol %s\r\nb SELECT INBOX\r\n"
                    % PW["carol"].encode())
        buf = read_until(tls, buf, b"\r\nb OK", 65536)
        assert b"* 1 EXISTS" in buf, buf
        tls.sendall(b"c FETCH 1 (BODY.PEEK[])\r\n")
        time.sleep(2)           # let every buffer on the way fill up
        buf = b""
        small = 0
        while b"\r\nc OK" not in buf:
            chunk = tls.recv(1024 if small < 200 else 65536)
            assert chunk, "closed early"
            buf += chunk
            small += 1
            if small < 200 and small % 20 == 0:
                time.sleep(0.05)
            assert len(buf) < len(msg) + 65536
        m = re.search(rb"\{(\d+)\}\r\n", buf)
        assert m and int(m.group(1)) == len(msg), buf[:2000]
        assert buf[m.end():m.end() + len(msg)] == msg
    finally:
        tls.close()


def test_close_notify_at_the_end(start, certs):
    p = start(tls_server(certs, "imap"))
    tls = tls_imap(p.port, certs, suppress_ragged_eofs=False)
    try:
        read_until(tls, b"", b"\r\n", 4096)
        tls.sendall(b"a LOGOUT\r\n")
        buf = b""
        while True:
            # SSLEOFError here: the TCP connection ended without
            # close_notify
            chunk = tls.recv(4096)
            if not chunk:
                break
            buf += chunk
        assert b"a OK" in buf
    finally:
        tls.close()
    # after a login, postern relays; the backend's close ends in a
    # close_notify too


# --------------------------------------------------------------------------
# implicit TLS behind a PROXY protocol balancer

def test_proxy_header_and_client_hello_in_one_packet(start, certs):
    """A balancer sends the PROXY header and the client's ClientHello
    together: no byte of the ClientHello may be taken with the header."""
    srv = tls_server(certs, "imap")
    srv["listen"] += " proxy_protocol"
    srv["set_real_ip_from"] = ["127.0.0.1"]
    p = start(srv)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = out.read()
    hdr = b"PROXY TCP4 192.0.2.9 127.0.0.1 40009 993\r\n"
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(hdr + hello)
        greeting = b""
        for _ in range(200):
            data = s.recv(65536)
            assert data, "postern closed the connection"
            inc.write(data)
            try:
                if not greeting:
                    tls.do_handshake()
                greeting += tls.read(4096)
            except ssl.SSLWantReadError:
                pass
            pending = out.read()
            if pending:
                s.sendall(pending)
            if greeting.endswith(b"\r\n"):
                break
        assert greeting.startswith(b"* OK"), greeting
    harness.wait_for(lambda: "PROXY protocol src: 192.0.2.9 40009" in
                     p.log_text(), 10, what="the real address in the log")
