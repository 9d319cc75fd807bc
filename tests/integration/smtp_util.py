"""Helpers for the SMTP and client-address integration tests
(test_smtp.py, test_client_addr.py): small in-process servers that record
what postern sends them, PROXY protocol headers, the DNS stub, and reading
mail back through postern's IMAP.

Everything here listens on 127.0.0.1 only, runs in daemon threads or as a
child process stopped by pid, and every wait is bounded.
"""

import base64
import http.server
import imaplib
import ipaddress
import json
import os
import re
import socket
import struct
import subprocess
import threading
import urllib.parse

import harness


# --------------------------------------------------------------------------
# a scriptable auth service in this process

class AuthStub:
    """An NGINX-protocol auth service whose answer is a Python function.

    decide(headers) -> list of (name, value) response headers.  Every
    request's headers (a dict) are kept in .requests."""

    def __init__(self, decide):
        self.decide = decide
        self.requests = []
        self.lock = threading.Lock()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, fmt, *args):
                pass

            def do_GET(self):  # noqa: N802
                h = {k: v for k, v in self.headers.items()}
                with stub.lock:
                    stub.requests.append(h)
                out = stub.decide(h)
                text = "HTTP/1.0 200 OK\r\n" + "".join(
                    "%s: %s\r\n" % kv for kv in out) + "\r\n"
                self.wfile.write(text.encode("latin-1"))

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d/auth" % self.port

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def unescape(value):
    """A header value escaped the NGINX way (%XX) as text."""
    return urllib.parse.unquote_to_bytes(value.encode("latin-1")).decode(
        "utf-8", "replace")


# --------------------------------------------------------------------------
# a fake SMTP backend that records what it receives

class FakeSMTP(harness.FakeServer):
    """A minimal SMTP server on 127.0.0.1 that records every line.

    ehlo: capability lines after the name (e.g. ["AUTH PLAIN"]).
    auth_ok: the (user, password) AUTH PLAIN accepts.
    expect_proxy: the first line is a PROXY header, kept in the session's
    "proxy".
    xclient_needs_ehlo: XCLIENT before EHLO gets 503 (it gets "250 2.0.0
    ok" otherwise, as every command this fake does not know).
    Sessions are dicts in .sessions, in accept order: {"lines": [...],
    "data": [bytes], "proxy": line or None}."""

    conn_timeout = 20

    def __init__(self, ehlo=("PIPELINING", "8BITMIME"), auth_ok=None,
                 expect_proxy=False, xclient_needs_ehlo=False):
        self.ehlo = list(ehlo)
        self.xclient_needs_ehlo = xclient_needs_ehlo
        self.auth_ok = auth_ok
        self.expect_proxy = expect_proxy
        self.sessions = []
        super().__init__()

    def on_accept(self, index, peer):
        self.sessions.append({"lines": [], "data": [], "proxy": None})

    def handle(self, c, index):
        rec = self.sessions[index]
        f = c.makefile("rb")

        def send(text):
            c.sendall(text.encode())
        greeted = False
        try:
            if self.expect_proxy:
                rec["proxy"] = f.readline(256)
            send("220 fake.example ESMTP\r\n")
            for _ in range(10000):
                line = f.readline(65536)
                if not line:
                    return
                rec["lines"].append(line)
                verb = line[:4].upper()
                if (line[:8].upper() == b"XCLIENT " and self.xclient_needs_ehlo
                        and not greeted):
                    send("503 5.5.1 Error: send HELO/EHLO first\r\n")
                elif verb == b"EHLO":
                    greeted = True
                    caps = ["fake.example"] + self.ehlo
                    send("".join("250%s%s\r\n" % (
                        " " if i == len(caps) - 1 else "-", x)
                        for i, x in enumerate(caps)))
                elif verb == b"HELO":
                    send("250 fake.example\r\n")
                elif verb == b"AUTH":
                    parts = line.split()
                    ok = False
                    if len(parts) == 3 and parts[1].upper() == b"PLAIN":
                        try:
                            raw = base64.b64decode(parts[2], validate=True)
                            _z, user, pw = raw.split(b"\0")
                            ok = (self.auth_ok is not None and
                                  (user.decode(), pw.decode())
                                  == tuple(self.auth_ok))
                        except ValueError:
                            ok = False
                    send("235 2.7.0 Accepted\r\n" if ok else
                         "535 5.7.8 Bad credentials\r\n")
                elif verb == b"DATA":
                    send("354 go ahead\r\n")
                    body = b""
                    for _ in range(1000000):
                        if body.endswith(b"\r\n.\r\n"):
                            break
                        chunk = f.readline(1 << 20)
                        if not chunk:
                            return
                        body += chunk
                    else:
                        return
                    rec["data"].append(body)
                    send("250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    send("221 bye\r\n")
                    return
                elif verb == b"RCPT":
                    send("250 2.1.5 recipient ok\r\n")
                else:
                    send("250 2.0.0 ok\r\n")
        except OSError:
            pass
        finally:
            f.close()

    def wait_sessions(self, n=1, timeout=10):
        return harness.wait_for(lambda: len(self.sessions) >= n, timeout,
                                what="%d backend session(s)" % n)


# --------------------------------------------------------------------------
# the DNS stub (tests/integration/dnsstub.py) as a child process

DNSSTUB = os.path.join(harness.HERE, "dnsstub.py")


class DNSStub:
    """dnsstub.py on a free UDP port of 127.0.0.1 with a JSON map."""

    def __init__(self, table, mode="normal", delay=3.0):
        self.dir = harness.make_tmpdir("dnsstub")
        self.log = os.path.join(self.dir, "queries.log")
        mapfile = os.path.join(self.dir, "map.json")
        with open(mapfile, "w") as f:
            json.dump(table, f)
        self.proc = harness.spawn(
            [harness.PYTHON, DNSSTUB, "--mode", mode, "--delay", str(delay),
             "--log", self.log, "--lifetime", "600", "@" + mapfile],
            "dnsstub", stdout=subprocess.PIPE)
        import select
        r, _w, _x = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline() if r else b""
        if not line.strip().isdigit():
            self.stop()
            raise harness.HarnessError("dnsstub printed no port: %r" % line)
        self.port = int(line)

    def queries(self):
        try:
            with open(self.log) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def stop(self):
        if self.proc is not None:
            harness.stop_process(self.proc, timeout=5)
            self.proc.stdout.close()
            self.proc = None
        harness.remove_tmpdir(self.dir)


# --------------------------------------------------------------------------
# PROXY protocol headers

PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v1(src, dst, sport, dport):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport,
                                          dport)).encode()


def proxy_v2(src, dst, sport, dport, command=1, tlvs=b""):
    """A v2 header: PROXY (command 1) or LOCAL (0), TCP over IPv4/IPv6."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        fam, body = 0x11, s.packed + d.packed
    else:
        fam, body = 0x21, s.packed + d.packed
    body += struct.pack(">HH", sport, dport) + tlvs
    return PP2_SIG + bytes([0x20 | command, fam]) + \
        struct.pack(">H", len(body)) + body


# --------------------------------------------------------------------------
# clients

def connect_from(port, source="127.0.0.1", timeout=10.0):
    """A harness.LineClient whose socket is bound to source."""
    c = harness.LineClient.__new__(harness.LineClient)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                      source_address=(source, 0))
    c.buf = b""
    return c


def read_reply(c):
    """One whole SMTP reply (all its lines) from a LineClient, as bytes."""
    out = b""
    while True:
        line = c.readline()
        out += line
        if not line or len(line) < 4 or line[3:4] != b"-":
            return out


def ehlo_auth_plain(c, user, password):
    """After the greeting: EHLO, then AUTH PLAIN with an initial response;
    the reply line to AUTH."""
    c.send("EHLO x\r\n")
    read_reply(c)
    ir = base64.b64encode(b"\0%s\0%s" % (user.encode(), password.encode()))
    return c.cmd("AUTH PLAIN " + ir.decode())


def imap_fetch_all(port, user, password, message_id=None):
    """The messages of user's INBOX (those with message_id, if given)
    through postern's IMAP, as bytes."""
    c = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        c.login(user, password)
        typ, data = c.select("INBOX", readonly=True)
        if message_id is None:
            nums = [str(i) for i in range(1, int(data[0]) + 1)]
        else:
            typ, data = c.search(None, "HEADER", "Message-ID", message_id)
            assert typ == "OK"
            nums = data[0].decode().split()
        out = []
        for i in nums:
            typ, d = c.fetch(i, "(BODY.PEEK[])")
            assert typ == "OK"
            out.append(d[0][1])
        return out
    finally:
        try:
            c.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def delivered_as_sent(delivered, sent):
    """True if delivered is sent with only header lines put in front
    (Received:, Return-Path:, Delivered-To: by Postfix and Dovecot)."""
    if not delivered.endswith(sent):
        return False
    prefix = delivered[:len(delivered) - len(sent)]
    for line in prefix.split(b"\r\n" if b"\r\n" in prefix else b"\n"):
        if line and not re.match(rb"^([A-Za-z-]+:|[ \t])", line):
            return False
    return True


def drain(c, timeout=5.0):
    """Everything a LineClient receives until the peer closes; None if it
    is still open after timeout seconds."""
    c.sock.settimeout(timeout)
    data = c.buf
    c.buf = b""
    try:
        while True:
            chunk = c.sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return data
    except socket.timeout:
        return None
