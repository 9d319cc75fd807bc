"""Helpers for the POP3 and auth-service integration tests
(test_pop3.py, test_auth_service.py): a raw POP3 client, SASL answers, a
scripted fake backend, and small waits on logs.

Everything here is bounded: sockets have timeouts, threads are daemons
that end when their socket closes, and every wait has a deadline.
"""

import base64
import hashlib
import hmac
import shutil
import subprocess

import harness


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def plain_response(user, password, authzid=""):
    """The AUTH PLAIN response (RFC 4616) for user and password, base64."""
    def enc(x):
        return x if isinstance(x, bytes) else x.encode()
    return b64(enc(authzid) + b"\0" + enc(user) + b"\0" + enc(password))


def cram_response(user, password, challenge_b64):
    """The CRAM-MD5 answer (RFC 2195) to a base64 challenge, base64."""
    challenge = base64.b64decode(challenge_b64)
    digest = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()
    return b64("%s %s" % (user, digest))


def apop_digest(timestamp, password):
    """The APOP digest (RFC 1939 7) of a greeting's <timestamp>."""
    if isinstance(timestamp, str):
        timestamp = timestamp.encode()
    return hashlib.md5(timestamp + password.encode()).hexdigest()


class Pop3Raw(harness.LineClient):
    """A byte-exact POP3 client: reads the greeting on connect."""

    def __init__(self, port, timeout=10.0):
        super().__init__(port, timeout=timeout)
        self.greeting = self.readline()

    def timestamp(self):
        """The APOP <timestamp> of the greeting, or None."""
        g = self.greeting
        if b"<" not in g or b">" not in g:
            return None
        return g[g.index(b"<"):g.rindex(b">") + 1].decode()

    def multiline(self):
        """The lines of a multi-line reply after its status line, without
        the final "."; each line as bytes without CRLF."""
        out = []
        for _ in range(10000):
            line = self.readline()
            if line in (b".\r\n", b""):
                return out
            out.append(line.rstrip(b"\r\n"))
        raise AssertionError("multi-line reply without an end")

    def login(self, user, password):
        """USER/PASS; returns the reply to PASS."""
        r = self.cmd("USER " + user)
        assert r.startswith(b"+OK"), r
        return self.cmd("PASS " + password)


class FakeBackend(harness.FakeServer):
    """A tiny scripted POP3 backend on a free loopback port.

    greeting: the first line sent (bytes, CRLF added), or None to close at
    once without a word.  replies: command verb (upper case) -> reply line
    (CAPA's: "+OK", USER, "." unless given).  Every line received is
    recorded in .received (bytes, CRLF stripped), and with it in
    .pipelined whether the next command had arrived before its answer
    went; .accepted counts the connections.
    """

    conn_timeout = 10

    def __init__(self, greeting=b"+OK fake ready", replies=None):
        self.greeting = greeting
        self.replies = dict(replies or {})
        self.replies.setdefault("CAPA", b"+OK\r\nUSER\r\n.")
        self.received = []
        self.pipelined = []
        super().__init__()

    def handle(self, c, index):
        try:
            if self.greeting is None:
                return
            c.sendall(self.greeting + b"\r\n")
            buf = b""
            for _ in range(100):
                for _ in range(1000):
                    if b"\n" in buf:
                        break
                    data = c.recv(4096)
                    if not data:
                        return
                    buf += data
                else:
                    return
                line, buf = buf.split(b"\n", 1)
                line = line.rstrip(b"\r")
                with self.lock:
                    self.received.append(line)
                    self.pipelined.append(b"\n" in buf)
                verb = line.split(b" ", 1)[0].upper().decode("latin-1")
                reply = self.replies.get(verb, b"+OK")
                if reply is None:
                    return
                c.sendall(reply + b"\r\n")
                if verb == "QUIT":
                    return
        except OSError:
            pass


def closed_port():
    """A loopback port where nothing listens (connect is refused)."""
    return harness.free_port()


def wait_log(p, pattern, timeout=10.0):
    """Wait until postern p's error log matches the regex pattern; returns
    the match."""
    import re
    rx = re.compile(pattern)
    return harness.wait_for(lambda: rx.search(p.log_text()), timeout,
                            what="%r in postern's error log" % pattern)


def wait_requests(svc, count, timeout=10.0):
    """Wait until the auth service has logged count requests; returns
    them."""
    return harness.wait_for(
        lambda: len(svc.requests()) >= count and svc.requests(), timeout,
        what="%d auth request(s)" % count)


def authsvc_users(dovecot, **extra):
    """The authsvc users file for the Dovecot users (IMAP and POP3), plus
    extra entries name -> dict."""
    users = harness.authsvc_users(dovecot)
    users.update(extra)
    return users


def reset_authsvc(svc, dovecot, **extra):
    """Fresh users and an empty request log; returns svc."""
    svc.write_users(authsvc_users(dovecot, **extra))
    with open(svc.log, "w"):
        pass
    return svc


def yescrypt_hash(password):
    """A yescrypt crypt(3) string for password: mkpasswd's when it is
    installed, else libxcrypt's own (crypt_gensalt + crypt through ctypes);
    None when neither can make one."""
    if shutil.which("mkpasswd"):
        r = subprocess.run(["mkpasswd", "-m", "yescrypt", "--stdin"],
                           input=password, capture_output=True, text=True,
                           timeout=30)
        if r.returncode == 0 and r.stdout.startswith("$y$"):
            return r.stdout.strip()
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("crypt")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        gensalt, crypt = lib.crypt_gensalt, lib.crypt
    except (OSError, AttributeError):
        return None
    gensalt.restype = ctypes.c_char_p
    gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
                        ctypes.c_int]
    crypt.restype = ctypes.c_char_p
    crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = gensalt(b"$y$", 0, None, 0)
    if not salt:
        return None
    h = crypt(password.encode(), salt)
    return h.decode() if h and h.startswith(b"$y$") else None


class AuthSvcWith(harness.AuthSvc):
    """harness.AuthSvc started with extra authsvc.py options (e.g.
    ["--fail-wait", "1"] or ["--control", PATH])."""

    def __init__(self, users, args=()):
        super().__init__(users)
        self.extra_args = list(args)

    def start(self, port=0):
        orig = harness.spawn

        def spawn(argv, label, **kw):
            return orig(list(argv) + self.extra_args, label, **kw)
        harness.spawn = spawn
        try:
            return super().start(port)
        finally:
            harness.spawn = orig


class ScriptedAuth(harness.FakeServer):
    """A raw auth service: answers every request with the same bytes
    (response), and keeps each request as received (bytes) in .requests.
    For response handling authsvc.py cannot produce (header case, bare LF,
    missing or malformed headers)."""

    conn_timeout = 10

    def __init__(self, response):
        self.response = response
        self.requests = []
        super().__init__()
        self.url = "http://127.0.0.1:%d/auth" % self.port

    def handle(self, c, index):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf and len(buf) < 65536:
                data = c.recv(4096)     # each pass grows buf or ends
                if not data:
                    break
                buf += data
            with self.lock:
                self.requests.append(buf)
            c.sendall(self.response)
        except OSError:
            pass
