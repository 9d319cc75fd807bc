"""Helpers for test_imap.py: a raw IMAP client, tiny fake IMAP backends and
a Dovecot fixture that admits many sessions at once.

Everything here runs on loopback, every wait is bounded, and every thread
or socket is closed by the test that made it."""

import hashlib
import hmac
import base64
import socket
import threading
import time

import harness

# Users beyond harness.USERS: carol's password needs quoting in IMAP (a
# double quote and a backslash), so LOGIN must escape it.
EXTRA_USERS = {"carol": 'q"uo\\te'}


class ManyDovecot(harness.Dovecot):
    """The harness's Dovecot, with limits raised for 200 parallel sessions
    of one user from one address (Dovecot's defaults: 100 processes per
    service, 10 connections per user and address)."""

    def config(self):
        return super().config() + """\
default_process_limit = 600
default_client_limit = 4000
mail_max_userip_connections = 1000
service imap {
  process_limit = 600
}
"""


class Raw(harness.LineClient):
    """A raw IMAP client: byte-exact lines, optionally from a chosen local
    address (127.0.0.2 ...: loopback accepts the whole 127/8)."""

    def __init__(self, port, timeout=10.0, source=None, greet=True):
        self.buf = b""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        self.sock = s
        self.greeting = self.readline() if greet else None

    def tagged(self, tag, limit=200):
        """Lines up to and including the one tagged `tag` (bytes each);
        stops early at EOF (the last element is then b"")."""
        out = []
        prefix = tag.encode() + b" "
        for _ in range(limit):
            line = self.readline()
            out.append(line)
            if not line or line.startswith(prefix):
                return out
        raise AssertionError("no tagged %s reply in %d lines: %r"
                             % (tag, limit, out[-5:]))

    def run(self, tag, line):
        """Send `tag line` and return (tagged reply line, all lines)."""
        if isinstance(line, bytes):
            self.send(tag.encode() + b" " + line + b"\r\n")
        else:
            self.send("%s %s\r\n" % (tag, line))
        lines = self.tagged(tag)
        return lines[-1], lines

    def read_all(self, timeout=5.0):
        """Everything until EOF (bounded by timeout)."""
        data, self.buf = self.buf, b""
        self.sock.settimeout(timeout)
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                d = self.sock.recv(65536)
                if not d:
                    break
                data += d
        except (socket.timeout, ConnectionResetError):
            pass
        return data


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def cram_answer(user, password, challenge_b64):
    """The base64 CRAM-MD5 answer to a "+ CHALLENGE" line's text."""
    chal = base64.b64decode(challenge_b64)
    digest = hmac.new(password.encode(), chal, hashlib.md5).hexdigest()
    return b64("%s %s" % (user, digest))


def closed_port():
    """A loopback port nobody listens on (bound, never listened: refuses)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


class FakeBackend(harness.FakeServer):
    """A tiny scripted IMAP server on a free loopback port.

    mode:
      "preauth"   greets "* PREAUTH ..."
      "garbage"   greets with a line that is not IMAP
      "refuse"    a normal greeting, then answers LOGIN (with literals)
                  "TAG NO [AUTHENTICATIONFAILED] Backend says no."
      "ok"        a normal greeting, then an untagged CAPABILITY and "TAG OK"
                  to LOGIN; echoes whatever comes after
      "hold"      as "ok", but after the EOF from postern it keeps the
                  connection open (until stop()), as a slow backend would
      "eofreply"  as "hold", and it answers the EOF with AFTER_EOF first
      "chatter"   as "ok" up to the login, then reads nothing more and
                  sends CHATTER every 50 ms (until stop() or conn_timeout)
      "silent"    accepts and never says anything
      "reset"     a normal greeting, then resets the connection (RST)
                  instead of answering LOGIN
    literal_plus: the greeting announces LITERAL+ (and a {n+} literal then
    gets no "+" continuation).
    Everything received is kept in .received (bytes), per connection;
    .eof_seen is set once a logged-in connection has read its EOF."""

    conn_timeout = 30
    AFTER_EOF = b"* BYE answered after the EOF\r\n"
    CHATTER = b"* OK still here\r\n"

    def __init__(self, mode, literal_plus=False):
        self.mode = mode
        self.literal_plus = literal_plus
        self.received = []
        self.eof_seen = threading.Event()
        super().__init__()

    def _after_eof(self, c):
        """"hold" and "eofreply": keep the connection until stop() (or
        conn_timeout)."""
        self.eof_seen.set()
        if self.mode == "eofreply":
            c.sendall(self.AFTER_EOF)
        deadline = time.monotonic() + self.conn_timeout
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(0.05)

    def on_accept(self, index, peer):
        self.received.append(b"")

    def _recv_line(self, c, idx):
        data = b""
        for _ in range(65536):
            d = c.recv(1)
            if not d:
                raise EOFError
            data += d
            if data.endswith(b"\n"):
                self.received[idx] += data
                return data
        raise ValueError("line too long")

    def _recv_n(self, c, idx, n):
        data = b""
        while len(data) < n:        # each pass takes a byte or raises
            d = c.recv(n - len(data))
            if not d:
                raise EOFError
            data += d
        self.received[idx] += data
        return data

    def handle(self, c, idx):
        try:
            if self.mode == "preauth":
                c.sendall(b"* PREAUTH [CAPABILITY IMAP4rev1] logged in\r\n")
            elif self.mode == "silent":
                self.drain(c)
                return
            elif self.mode == "garbage":
                c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            elif self.literal_plus:
                c.sendall(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] fake ready\r\n")
            else:
                c.sendall(b"* OK fake ready\r\n")
            if self.mode in ("preauth", "garbage"):
                # read whatever comes until the peer closes
                self.drain(c)
                return
            line = self._recv_line(c, idx)        # TAG LOGIN ...
            tag = line.split(b" ", 1)[0]
            for _ in range(100):
                if not line.rstrip().endswith(b"}"):
                    break
                spec = line.rstrip()[:-1].rsplit(b"{", 1)[1]
                n = int(spec.rstrip(b"+"))
                if not spec.endswith(b"+"):
                    c.sendall(b"+ go\r\n")
                self._recv_n(c, idx, n)
                line = self._recv_line(c, idx)
            else:
                raise ValueError("too many literals")
            if self.mode == "reset":
                harness.close_with_reset(c)
                return
            if self.mode == "refuse":
                c.sendall(tag + b" NO [AUTHENTICATIONFAILED] Backend says "
                          b"no.\r\n")
                self.drain(c)
                return
            c.sendall(b"* CAPABILITY IMAP4rev1 FAKE\r\n" + tag
                      + b" OK logged in\r\n")
            if self.mode == "chatter":
                # a small receive buffer: what postern sends stays with it
                c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                self.chatted = 0
                deadline = time.monotonic() + self.conn_timeout
                while not self.stopping and time.monotonic() < deadline:
                    c.sendall(self.CHATTER)
                    self.chatted += 1
                    time.sleep(0.05)
                return
            for _ in range(1000000):
                d = c.recv(65536)
                if not d:
                    if self.mode in ("hold", "eofreply"):
                        self._after_eof(c)
                    return
                self.received[idx] += d
                c.sendall(d)
        except (OSError, EOFError, ValueError):
            pass


def dave_at(fb):
    """auth_file entries sending dave (password dave-pw) to the fake
    backend fb."""
    return [("dave", "{PLAIN}dave-pw", "127.0.0.1:%d" % fb.port)]


def log_lines(text, pattern):
    """Lines of a log text that contain pattern."""
    return [ln for ln in text.splitlines() if pattern in ln]
