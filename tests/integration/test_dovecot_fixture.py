"""The backend fixtures themselves: Dovecot serves IMAP and POP3 to the
test users, and Postfix (with XCLIENT) delivers to Dovecot over LMTP.

These talk to the backends directly, without postern, so that a failure
here points at the test machine, not at postern."""

import imaplib
import os
import poplib
import smtplib
import subprocess
import sys

import harness


def test_imap_login_and_fetch(dovecot):
    dovecot.clear("alice")
    dovecot.put_message("alice", harness.make_message("fixture imap"))
    c = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=10)
    try:
        assert c.login("alice", harness.USERS["alice"])[0] == "OK"
        typ, data = c.select("INBOX")
        assert typ == "OK" and int(data[0]) == 1
        typ, data = c.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK"
        assert b"Subject: fixture imap" in data[0][1]
    finally:
        c.logout()


def test_imap_cram_md5(dovecot):
    c = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=10)
    try:
        assert "AUTH=CRAM-MD5" in c.capabilities
        assert c.login_cram_md5("bob", harness.USERS["bob"])[0] == "OK"
    finally:
        c.logout()


def test_imap_bad_password(dovecot):
    c = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=10)
    try:
        try:
            c.login("alice", "wrong")
        except imaplib.IMAP4.error:
            pass
        else:
            raise AssertionError("login with a wrong password succeeded")
    finally:
        c.shutdown()


def test_pop3_login_and_retr(dovecot):
    dovecot.clear("bob")
    body = b"line one\r\nline two\r\n"
    dovecot.put_message("bob", harness.make_message("fixture pop3", body))
    c = poplib.POP3("127.0.0.1", dovecot.pop3_port, timeout=10)
    try:
        c.user("bob")
        c.pass_(harness.USERS["bob"])
        count, _size = c.stat()
        assert count == 1
        _resp, lines, _octets = c.retr(1)
        assert b"Subject: fixture pop3" in lines
        assert lines[-2:] == [b"line one", b"line two"]
    finally:
        c.quit()


def test_lmtp_delivery(dovecot):
    dovecot.clear("alice")
    dovecot.deliver("alice", harness.make_message("fixture lmtp"))
    msgs = dovecot.wait_messages("alice", 1, timeout=10)
    assert b"Subject: fixture lmtp" in msgs[0]


def test_postfix_delivers_over_lmtp(postfix, dovecot):
    dovecot.clear("bob")
    long_line = b"x" * 5000 + b"\r\n"
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=10) as s:
        s.ehlo("client.example")
        s.sendmail("carol@example.test", ["bob@example.test"],
                   harness.make_message("fixture postfix", long_line,
                                        to="bob@example.test"))
    msgs = dovecot.wait_messages("bob", 1, timeout=30)
    assert b"Subject: fixture postfix" in msgs[0]
    # lmtp_line_length_limit = 0: long lines arrive unfolded
    assert b"x" * 5000 + b"\n" in msgs[0].replace(b"\r\n", b"\n")


def test_postfix_accepts_xclient_from_loopback(postfix, dovecot):
    dovecot.clear("bob")
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=10) as s:
        s.ehlo("proxy.example")
        assert s.has_extn("xclient")
        code, _msg = s.docmd("XCLIENT", "ADDR=192.0.2.7 LOGIN=alice")
        assert code == 220
        s.ehlo("client.example")
        s.sendmail("alice@example.test", ["bob@example.test"],
                   harness.make_message("fixture xclient",
                                        to="bob@example.test"))
    dovecot.wait_messages("bob", 1, timeout=30)
    harness.wait_for(lambda: "sasl_username=alice" in postfix.log_text(),
                     10, what="the XCLIENT login in the mail log")
    assert "client=unknown[192.0.2.7]" in postfix.log_text()


def test_authsvc_answers_for_dovecot_users(authsvc, dovecot):
    h = authsvc.ask("alice", harness.USERS["alice"], "imap")
    assert h.get("Auth-Status") == "OK", h
    assert h.get("Auth-Server") == "127.0.0.1"
    assert int(h.get("Auth-Port")) == dovecot.imap_port
    h = authsvc.ask("bob", harness.USERS["bob"], "pop3")
    assert int(h.get("Auth-Port")) == dovecot.pop3_port
    h = authsvc.ask("alice", "wrong", "imap")
    assert h.get("Auth-Status") != "OK", h
    reqs = authsvc.requests()
    assert [r.get("user") for r in reqs[-3:]] == ["alice", "bob", "alice"]


def test_free_ports_of_side_by_side_test_programs_differ():
    """Two test programs that `make check` runs at once take ports from
    different blocks, below the kernel's ephemeral range (where no
    outgoing connection can take one before its server binds it)."""
    mine = {harness.free_port() for _ in range(3)}
    code = ("import harness\n"
            "print(' '.join(str(harness.free_port()) for _ in range(3)))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=harness.HERE,
                         env=dict(os.environ, PYTHONPATH=harness.HERE),
                         capture_output=True, text=True, timeout=30,
                         check=True).stdout
    theirs = {int(p) for p in out.split()}
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral = int(f.read().split()[0])
    assert len(mine) == 3 and len(theirs) == 3
    assert not mine & theirs
    assert max(mine | theirs) < ephemeral
