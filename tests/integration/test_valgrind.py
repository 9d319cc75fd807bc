"""postern under valgrind's memcheck: the main paths of every protocol, a
TLS login, a refused login, a protocol error and a reload, then a clean
stop, with no memory error and no leak.

The sanitizer builds find most of this too; memcheck runs the normal
build (the one users install) and also sees reads of uninitialised
memory, which AddressSanitizer does not.  Skipped for a sanitizer build
(the two cannot share a process) and when valgrind is not installed
(tests/setup-debian.sh installs it, so CI never skips)."""

import base64
import imaplib
import os
import poplib
import shutil
import signal
import smtplib
import socket
import ssl

import pytest

import harness

VALGRIND = shutil.which("valgrind")
SLOW = 60           # seconds: valgrind runs postern some 20-50 times slower


def sanitized(path):
    """Whether the binary was built with a sanitizer runtime."""
    with open(path, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data


pytestmark = [
    pytest.mark.skipif(VALGRIND is None, reason="valgrind is not installed"),
    pytest.mark.skipif(sanitized(harness.POSTERN_BIN),
                       reason="a sanitizer build: not for valgrind"),
]


class UnderValgrind(harness.Postern):
    """postern started as memcheck's guest; valgrind's report in its own
    file, its exit status 99 on any error or definite/indirect leak."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.report = os.path.join(self.dir, "valgrind.log")

    def command(self, *args):
        return [VALGRIND, "--tool=memcheck", "--leak-check=full",
                "--show-leak-kinds=definite,indirect",
                "--errors-for-leak-kinds=definite,indirect",
                "--error-exitcode=99", "--log-file=" + self.report,
                ] + super().command(*args)

    def report_text(self):
        return harness.read_text(self.report)


@pytest.fixture
def guest(authsvc, dovecot, postfix, certs):
    users = harness.authsvc_users(dovecot, postfix)
    authsvc.write_users(users)
    tls_port = harness.free_port()
    tls = {"protocol": "imap", "listen": "127.0.0.1:%d ssl" % tls_port}
    tls.update(certs.server_settings("rsa"))
    # APOP: the acceptor makes the client's timestamp, the worker checks
    # the digest with it; the delay: the acceptor holds, then greets
    # one worker: a session silent in its dialogue leaves it to the next
    # (parks in the acceptor) and is taken on by it later
    p = UnderValgrind([{"protocol": "imap"},
                       {"protocol": "pop3", "pop3_auth": ["plain", "apop"]},
                       {"protocol": "smtp", "smtp_greeting_delay": "100ms"},
                       tls],
                      auth=authsvc.url, log_level="info", tag="valgrind",
                      top={"worker_threads": 1})
    try:
        p.start(timeout=SLOW)
    except harness.HarnessError as e:
        p.cleanup()
        pytest.fail(str(e), pytrace=False)
    yield p
    p.cleanup()


def imap_session(port, user, context=None):
    if context is None:
        c = imaplib.IMAP4("127.0.0.1", port, timeout=SLOW)
    else:
        c = imaplib.IMAP4_SSL("localhost", port, ssl_context=context,
                              timeout=SLOW)
    try:
        assert c.login(user, harness.USERS[user])[0] == "OK"
        typ, data = c.select("INBOX")
        assert typ == "OK"
        typ, data = c.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK" and b"Subject: under valgrind" in data[0][1]
    finally:
        c.logout()


def test_no_memory_error_or_leak(guest, dovecot, certs):
    imap, pop3, smtp, imaps = guest.ports
    for user in ("alice", "bob"):
        dovecot.clear(user)
        dovecot.put_message(user, harness.make_message("under valgrind"))

    imap_session(imap, "alice")
    imap_session(imaps, "bob", certs.client_context())

    c = poplib.POP3("127.0.0.1", pop3, timeout=SLOW)
    try:
        c.user("bob")
        c.pass_(harness.USERS["bob"])
        assert b"Subject: under valgrind" in b"\r\n".join(c.retr(1)[1])
    finally:
        c.quit()
    c = poplib.POP3("127.0.0.1", pop3, timeout=SLOW)
    try:
        assert c.apop("alice", harness.USERS["alice"]).startswith(b"+OK")
        assert c.stat()[0] == 1
    finally:
        c.quit()

    # the second login sends XCLIENT right after the greeting (and the
    # second POP3 login above sent USER and PASS together)
    for user in ("alice", "bob"):
        with smtplib.SMTP("127.0.0.1", smtp, timeout=SLOW) as s:
            s.ehlo("client.example")
            s.login(user, harness.USERS[user])
            s.sendmail("%s@example.test" % user, ["bob@example.test"],
                       harness.make_message("mailed under valgrind",
                                            to="bob@example.test"))

    # a refused login and a line over every bound
    c = imaplib.IMAP4("127.0.0.1", imap, timeout=SLOW)
    with pytest.raises(imaplib.IMAP4.error):
        c.login("alice", "wrong")
    c.shutdown()
    with socket.create_connection(("127.0.0.1", imap), timeout=SLOW) as raw:
        raw.settimeout(SLOW)
        f = raw.makefile("rb")
        assert f.readline().startswith(b"* OK")
        raw.sendall(b"a " + b"x" * 100000 + b"\r\n")
        assert f.readline().startswith((b"a BAD", b"* BAD"))

    # a session parks while another is served, twice (between commands,
    # in the middle of one), and logs in after; one more is left parked
    # for the stop to free
    parked = harness.LineClient(imap, timeout=SLOW)
    assert parked.readline().startswith(b"* OK")
    assert parked.cmd("a NOOP").startswith(b"a OK")
    imap_session(imap, "alice")
    parked.send("b LOGIN bob")
    imap_session(imap, "alice")
    parked.send(" %s\r\n" % harness.USERS["bob"])
    assert parked.line_starting(b"b ").startswith(b"b OK")
    parked.close()
    # and in a SASL exchange, before its answer
    parked = harness.LineClient(imap, timeout=SLOW)
    assert parked.readline().startswith(b"* OK")
    assert parked.cmd("s AUTHENTICATE PLAIN").startswith(b"+")
    imap_session(imap, "alice")
    plain = base64.b64encode(("\0bob\0" + harness.USERS["bob"]).encode())
    parked.send(plain + b"\r\n")
    assert parked.line_starting(b"s ").startswith(b"s OK")
    parked.close()
    left = harness.LineClient(imap, timeout=SLOW)
    assert left.readline().startswith(b"* OK")
    assert left.cmd("l AUTHENTICATE PLAIN").startswith(b"+")
    # and one in the middle of its TLS handshake: the start of a hello
    half = socket.create_connection(("127.0.0.1", imaps), timeout=SLOW)
    half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")

    # a reload builds a new configuration and frees the old one
    guest.kill(signal.SIGHUP)
    harness.wait_for(lambda: "reconfigured from" in guest.log_text(), SLOW,
                     what="the reload's log line")
    assert "reload failed" not in guest.log_text()
    imap_session(imap, "alice")

    status = guest.stop(signal.SIGTERM, timeout=SLOW)
    left.close()
    half.close()
    report = guest.report_text()
    assert status == 0, "valgrind's exit status %r\n%s" % (
        status, report[-6000:])
    assert "Memcheck" in report and "LEAK SUMMARY" in report \
        or "All heap blocks were freed" in report, report[-6000:]
    assert "ERROR SUMMARY: 0 errors" in report, report[-6000:]
