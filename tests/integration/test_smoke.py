"""The fixtures working together: a client logs in through postern (with
the auth service and with auth_file) to the private Dovecot, and sends
mail through postern to the private Postfix, which delivers it to Dovecot.

A quick end-to-end check that the harness and postern's main path work;
the protocol tests go into detail."""

import imaplib
import poplib
import smtplib

import pytest

import harness


@pytest.fixture
def via_authsvc(postern, authsvc, dovecot, postfix):
    users = harness.authsvc_users(dovecot, postfix)
    authsvc.write_users(users)
    return postern([{"protocol": "imap"}, {"protocol": "pop3"},
                    {"protocol": "smtp"}], auth=authsvc.url)


def test_imap_through_postern(via_authsvc, dovecot):
    dovecot.clear("alice")
    dovecot.put_message("alice", harness.make_message("smoke imap"))
    c = imaplib.IMAP4("127.0.0.1", via_authsvc.ports[0], timeout=10)
    try:
        assert c.login("alice", harness.USERS["alice"])[0] == "OK"
        typ, data = c.select("INBOX")
        assert typ == "OK" and int(data[0]) == 1
        typ, data = c.fetch("1", "(BODY.PEEK[])")
        assert b"Subject: smoke imap" in data[0][1]
    finally:
        c.logout()


def test_pop3_through_postern(via_authsvc, dovecot):
    dovecot.clear("bob")
    dovecot.put_message("bob", harness.make_message("smoke pop3"))
    c = poplib.POP3("127.0.0.1", via_authsvc.ports[1], timeout=10)
    try:
        c.user("bob")
        c.pass_(harness.USERS["bob"])
        assert c.stat()[0] == 1
        assert b"Subject: smoke pop3" in c.retr(1)[1]
    finally:
        c.quit()


def test_smtp_through_postern(via_authsvc, dovecot, postfix):
    dovecot.clear("bob")
    with smtplib.SMTP("127.0.0.1", via_authsvc.ports[2], timeout=10) as s:
        s.ehlo("client.example")
        s.login("alice", harness.USERS["alice"])
        s.sendmail("alice@example.test", ["bob@example.test"],
                   harness.make_message("smoke smtp", to="bob@example.test"))
    msgs = dovecot.wait_messages("bob", 1, timeout=30)
    assert b"Subject: smoke smtp" in msgs[0]
    # XCLIENT passed the login on to Postfix
    harness.wait_for(lambda: "sasl_username=alice" in postfix.log_text(), 10,
                     what="the forwarded login in the mail log")


@pytest.mark.parametrize("crypt", [False, True], ids=["plain", "crypt"])
def test_imap_with_auth_file(postern, dovecot, auth_file_for, crypt):
    p = postern([{"protocol": "imap"}],
                auth=auth_file_for("imap", crypt=crypt))
    c = imaplib.IMAP4("127.0.0.1", p.port, timeout=10)
    try:
        assert c.login("bob", harness.USERS["bob"])[0] == "OK"
        assert c.select("INBOX")[0] == "OK"
    finally:
        c.logout()
    c = imaplib.IMAP4("127.0.0.1", p.port, timeout=10)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            c.login("bob", "wrong")
    finally:
        c.shutdown()
