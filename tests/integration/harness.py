"""Test harness for postern's integration tests.

Starts throwaway servers as children of the test process, each in its own
temporary directory and on free loopback ports:

  Dovecot   a private Dovecot 2.3 (IMAP, POP3, LMTP; passwd-file users)
  Postfix   a private Postfix 3.7 (smtpd with XCLIENT, delivery over LMTP)
  AuthSvc   tests/integration/authsvc.py, an NGINX-protocol auth service
  Postern   the postern under test, from a generated postern.conf

Everything is stopped by pid, every wait has a bound, and nothing outside
the temporary directories is touched.  See /work/shared/design/real-servers.md
(in the project's shared notes) for why the backends are configured as they
are.
"""

import atexit
import collections
import fcntl
import json
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("POSTERN_SRCDIR") or os.path.dirname(
    os.path.dirname(HERE))
BUILDDIR = os.environ.get("POSTERN_BUILDDIR") or SRCDIR
POSTERN_BIN = os.environ.get("POSTERN_BIN") or os.path.join(BUILDDIR,
                                                             "postern")
PYTHON = "/usr/bin/python3"
REQUIRE_BACKENDS = os.environ.get("POSTERN_REQUIRE_BACKENDS") == "1"
KEEP = os.environ.get("POSTERN_TEST_KEEP") == "1"   # keep temp dirs

# Known test users of the Dovecot fixture: name -> password.
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
MAIL_DOMAIN = "example.test"

# Every process a test started and has not stopped yet, so that a test that
# dies halfway does not leave servers behind (see kill_leftovers).
_children = {}
# Log files worth showing when a test fails: label -> path.
LOGS = {}


class HarnessError(Exception):
    """A fixture could not be set up; the message carries the logs."""


# --------------------------------------------------------------------------
# small helpers

_PORT_LOW = 10000        # the blocks start here ...
_PORT_BLOCK = 500        # ... and are this many ports each
_port_claimed = False    # _claim_port_block() has run
_port_lock = None        # the open lock file that holds this process's block
_port_first = None       # the block's first port, or None: the kernel's choice
_port_next = 0
_given_ports = collections.deque(maxlen=4096)


def _claim_port_block():
    """Claim a block of ports below the kernel's ephemeral range for this
    process, held with flock() on a lock file for as long as the process
    lives.  Below that range no outgoing connection takes a port as its
    local port between free_port() and the server's bind(), and two test
    programs that `make check` runs side by side hold different blocks.
    When no block is free (or the ephemeral range starts too low), ports
    come from the kernel."""
    global _port_claimed, _port_lock, _port_first
    _port_claimed = True
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return
    lockdir = tempfile.gettempdir()
    for first in range(_PORT_LOW, ephemeral - _PORT_BLOCK + 1, _PORT_BLOCK):
        path = os.path.join(lockdir, "postern-test-ports.%d.lock" % first)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _port_lock, _port_first = fd, first
        return


def _kernel_port():
    """A port the kernel picks from its ephemeral range."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.append(port)
            return port
    raise HarnessError("no fresh free port in 100 tries")


def free_port():
    """A TCP port on 127.0.0.1 that nobody uses right now and that this
    process has not handed out lately: ports are taken in turn through the
    process's block (see _claim_port_block), each checked with a bind, so
    two ports for one configuration (say Dovecot's IMAP and POP3
    listeners) differ."""
    global _port_next
    if not _port_claimed:
        _claim_port_block()
    if _port_first is None:
        return _kernel_port()
    for _ in range(_PORT_BLOCK):
        port = _port_first + _port_next % _PORT_BLOCK
        _port_next += 1
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return _kernel_port()


def summary_line(p, timeout=5):
    """The relay's summary line ("proxied session done ...") of the one
    proxied session in postern p's log, once written."""
    def line():
        return next((ln for ln in p.log_text().splitlines()
                     if "proxied session done" in ln), None)
    return wait_for(line, timeout, what="the session's summary line:\n"
                    + p.log_text())


def server_end(port, peer_port):
    """/proc/net/tcp's fields of the server's end of the loopback
    connection 127.0.0.1:port <- 127.0.0.1:peer_port, or None."""
    # the kernel prints the address as one host-order integer
    host = "%08X" % struct.unpack("=I", socket.inet_aton("127.0.0.1"))[0]
    with open("/proc/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if fields[1] == "%s:%04X" % (host, port) \
                    and fields[2] == "%s:%04X" % (host, peer_port):
                return fields
    return None


def receive_queue_empty(port, peer_port):
    """Whether the server's end holds no unread bytes."""
    fields = server_end(port, peer_port)
    return fields is not None and int(fields[4].split(":")[1], 16) == 0


def wait_sessions(p, n, timeout=10):
    """Wait until postern p has accepted n clients (each one's connect line
    is written as it is accepted; the harness's probe of the port is the
    first).  Not that a worker has taken them: see receive_queue_empty."""
    wait_for(lambda: p.log_text().count(" connected to ") >= n, timeout,
             what="%d clients to be accepted" % n)


def last_session_lines(p):
    """postern p's log lines of the last session it numbered: a test's
    client when the harness's probe of the port came before it."""
    text = p.log_text()
    ids = [int(n) for n in re.findall(r"\] \d+#\d+: \*(\d+) ", text)]
    if not ids:
        return []
    return [ln for ln in text.splitlines() if ": *%d " % max(ids) in ln]


def read_text(path):
    """The file's text (undecodable bytes replaced), or "" while it does not
    exist yet: for logs the process under test writes."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def make_tmpdir(tag):
    """A fresh directory others (dovenull, postfix, nobody) can traverse."""
    d = tempfile.mkdtemp(prefix="postern-%s-" % tag)
    os.chmod(d, 0o755)
    return d


def remove_tmpdir(d):
    if d and not KEEP:
        shutil.rmtree(d, ignore_errors=True)


def tail(path, lines=40):
    """The last lines of a file, or a note that it is missing."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "(%s: %s)" % (path, e.strerror)
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


def logs_report(paths=None, lines=40):
    """Tails of the registered (or given) logs, for a failure message."""
    out = []
    for label, path in (paths or LOGS).items():
        out.append("----- %s (%s) -----\n%s" % (label, path,
                                                tail(path, lines)))
    return "\n".join(out)


def wait_for(cond, timeout=10.0, interval=0.05, what="condition"):
    """Poll cond() until it is true; raise after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s"
                               % (timeout, what))
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_port(port, timeout=10.0, proc=None, host="127.0.0.1"):
    """Wait until host:port accepts; fail early if proc has exited."""
    def ready():
        if proc is not None and proc.poll() is not None:
            raise HarnessError("process %d exited with status %s before "
                               "port %d opened" % (proc.pid, proc.returncode,
                                                   port))
        return port_open(port, host)
    wait_for(ready, timeout, what="port %s:%d" % (host, port))


def close_with_reset(sock):
    """Leave with a TCP reset (SO_LINGER 0) instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


def pid_alive(pid):
    """True if pid names a running process that is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    # state is the field after the parenthesised command name
    state = stat[stat.rfind(")") + 2:].split(" ", 1)[0]
    return state not in ("Z", "X")


def wait_pid_gone(pid, timeout=10.0):
    wait_for(lambda: not pid_alive(pid), timeout, what="pid %d to exit" % pid)


def read_pidfile(path):
    """The pid in a pid file, or None if it is missing or not yet written."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def spawn(argv, label, **kw):
    """Start a child process and remember it until stop_process()."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(argv, **kw)
    _children[p.pid] = (p, label)
    return p


def stop_process(p, sig=signal.SIGTERM, timeout=10.0):
    """Send sig to p, wait up to timeout, then SIGKILL.  Returns the status."""
    _children.pop(p.pid, None)
    if p.poll() is None:
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    return p.returncode


def forget_process(p):
    _children.pop(p.pid, None)


@atexit.register
def kill_leftovers():
    """Last resort: kill every child still registered."""
    for p, _label in list(_children.values()):
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
    _children.clear()


def nobody_ids():
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def chown_tree(path, uid, gid):
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for n in dirs + files:
            os.lchown(os.path.join(root, n), uid, gid)


def missing(*programs):
    """The missing ones of programs (absolute paths or names on PATH)."""
    return [p for p in programs
            if not (os.path.isabs(p) and os.access(p, os.X_OK))
            and shutil.which(p) is None]


def make_message(subject, body="Hello.\r\n", sender="carol@example.test",
                 to="alice@example.test"):
    """A small RFC 5322 message with CRLF line ends, as bytes."""
    if isinstance(body, str):
        body = body.encode()
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
            "Message-ID: <%s.%d@example.test>\r\n\r\n"
            % (sender, to, subject, re.sub(r"\W", "", subject) or "m",
               time.monotonic_ns()))
    return head.encode() + body


# --------------------------------------------------------------------------
# Dovecot

DOVECOT = "/usr/sbin/dovecot"


class Dovecot:
    """A private Dovecot 2.3 with IMAP, POP3 and LMTP on loopback."""

    def __init__(self, users=None):
        self.users = dict(users or USERS)
        self.dir = None
        self.proc = None
        self.imap_port = self.pop3_port = self.lmtp_port = None
        self.uid, self.gid = nobody_ids()

    def home(self, user):
        return os.path.join(self.dir, "home", user)

    def maildir(self, user):
        return os.path.join(self.home(user), "Maildir")

    def start(self):
        self.dir = make_tmpdir("dovecot")
        d = self.dir
        for sub in ("run", "state", "home"):
            os.makedirs(os.path.join(d, sub))
        os.chmod(os.path.join(d, "home"), 0o755)
        self.imap_port = free_port()
        self.pop3_port = free_port()
        self.lmtp_port = free_port()
        lines = []
        for name, pw in self.users.items():
            home = self.home(name)
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(home, "Maildir", sub))
            chown_tree(home, self.uid, self.gid)
            lines.append("%s:{PLAIN}%s:%d:%d::%s::\n"
                         % (name, pw, self.uid, self.gid, home))
        self.passwd = os.path.join(d, "users")
        with open(self.passwd, "w") as f:
            f.writelines(lines)
        os.chmod(self.passwd, 0o644)
        self.log = os.path.join(d, "dovecot.log")
        self.conf = os.path.join(d, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(self.config())
        LOGS["dovecot.log"] = self.log
        self.proc = spawn([DOVECOT, "-F", "-c", self.conf], "dovecot",
                          stdout=open(os.path.join(d, "stdout.log"), "wb"),
                          stderr=subprocess.STDOUT)
        try:
            for port in (self.imap_port, self.pop3_port, self.lmtp_port):
                wait_port(port, 15, self.proc)
        except (HarnessError, TimeoutError) as e:
            report = logs_report({
                "dovecot.log": self.log,
                "dovecot stdout": os.path.join(d, "stdout.log")})
            self.stop()
            raise HarnessError("dovecot did not start: %s\n%s" % (e, report))
        return self

    def config(self):
        d = self.dir
        return """\
# written by tests/integration/harness.py
base_dir = {d}/run
state_dir = {d}/state
instance_name = postern-test-{name}
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5
auth_username_format = %Ln
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
debug_log_path = {d}/dovecot.log
mail_location = maildir:~/Maildir
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
pop3_uidl_format = %08Xu%08Xv
login_greeting = Dovecot test ready.
hostname = mail.{dom}
postmaster_address = postmaster@{dom}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {d}/users
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
""".format(d=d, name=os.path.basename(d), uid=self.uid, gid=self.gid,
           dom=MAIL_DOMAIN, imap=self.imap_port, pop3=self.pop3_port,
           lmtp=self.lmtp_port)

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, 15)
            self.proc = None
        LOGS.pop("dovecot.log", None)
        remove_tmpdir(self.dir)

    # -- mailboxes ---------------------------------------------------------

    def put_message(self, user, msg, seen=False):
        """Write msg (bytes) straight into user's maildir; returns the path.

        Dovecot finds it on the next mailbox sync.  Use deliver() instead
        when the delivery itself is under test."""
        if isinstance(msg, str):
            msg = msg.encode()
        md = self.maildir(user)
        now = time.time_ns()
        name = "%d.M%06dP%dQ%d.postern-test" % (
            now // 10**9, now // 1000 % 10**6, os.getpid(),
            time.monotonic_ns() % 10**9)
        tmp = os.path.join(md, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(msg)
        os.chown(tmp, self.uid, self.gid)
        if seen:
            final = os.path.join(md, "cur", name + ":2,S")
        else:
            final = os.path.join(md, "new", name)
        os.rename(tmp, final)
        return final

    def deliver(self, user, msg, sender="carol@example.test"):
        """Deliver msg to user over LMTP (as Postfix would)."""
        if isinstance(msg, str):
            msg = msg.encode()
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=10) as c:
            c.sendmail(sender, ["%s@%s" % (user, MAIL_DOMAIN)], msg)

    def messages(self, user):
        """Every message in user's INBOX maildir, oldest first, as bytes."""
        md = self.maildir(user)
        files = []
        for sub in ("new", "cur"):
            p = os.path.join(md, sub)
            for n in os.listdir(p):
                full = os.path.join(p, n)
                files.append((os.stat(full).st_mtime_ns, n, full))
        out = []
        for _t, _n, full in sorted(files):
            with open(full, "rb") as f:
                out.append(f.read())
        return out

    def clear(self, user):
        """Empty user's INBOX (files only; Dovecot resyncs)."""
        md = self.maildir(user)
        for sub in ("new", "cur"):
            p = os.path.join(md, sub)
            for n in os.listdir(p):
                os.unlink(os.path.join(p, n))

    def wait_messages(self, user, count, timeout=20.0):
        """Wait until user's INBOX holds at least count messages."""
        return wait_for(lambda: len(self.messages(user)) >= count
                        and self.messages(user), timeout,
                        what="%d message(s) for %s" % (count, user))


# --------------------------------------------------------------------------
# Postfix

POSTFIX = "/usr/sbin/postfix"

_MASTER_CF = """\
# written by tests/integration/harness.py; no chroot anywhere
{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """A private Postfix 3.7 delivering over LMTP to a Dovecot fixture."""

    def __init__(self, dovecot):
        self.dovecot = dovecot
        self.dir = None
        self.port = None
        self.running = False

    def postconf(self, name):
        out = subprocess.run(["postconf", "-h", "-d", name],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip()

    def start(self):
        self.dir = make_tmpdir("postfix")
        d = self.dir
        self.port = free_port()
        self.maillog = os.path.join(d, "maillog")
        self.queue = os.path.join(d, "queue")
        os.makedirs(self.queue)
        os.chmod(self.queue, 0o755)
        dirs = {n: self.postconf(n) for n in (
            "command_directory", "daemon_directory", "shlib_directory",
            "meta_directory")}
        main_cf = """\
# written by tests/integration/harness.py
compatibility_level = 3.6
command_directory = {command_directory}
daemon_directory = {daemon_directory}
shlib_directory = {shlib_directory}
meta_directory = {meta_directory}
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.{dom}
mydomain = {dom}
myorigin = {dom}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = {dom}
virtual_transport = lmtp:inet:127.0.0.1:{lmtp}
lmtp_line_length_limit = 0
smtp_line_length_limit = 0
disable_mime_output_conversion = yes
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
""".format(d=d, dom=MAIL_DOMAIN, lmtp=self.dovecot.lmtp_port, **dirs)
        with open(os.path.join(d, "main.cf"), "w") as f:
            f.write(main_cf)
        with open(os.path.join(d, "master.cf"), "w") as f:
            f.write(_MASTER_CF.format(port="127.0.0.1:%d" % self.port))
        LOGS["postfix maillog"] = self.maillog
        r = subprocess.run([POSTFIX, "-c", d, "start"], capture_output=True,
                           text=True, timeout=60)
        self.running = True
        try:
            if r.returncode != 0:
                raise HarnessError("postfix start exited %d: %s%s"
                                   % (r.returncode, r.stdout, r.stderr))
            wait_port(self.port, 20)
        except (HarnessError, TimeoutError) as e:
            report = logs_report({"postfix maillog": self.maillog})
            self.stop()
            raise HarnessError("postfix did not start: %s\n%s" % (e, report))
        return self

    def master_pid(self):
        return read_pidfile(os.path.join(self.queue, "pid", "master.pid"))

    def stop(self):
        if self.running:
            pid = self.master_pid()
            subprocess.run([POSTFIX, "-c", self.dir, "stop"],
                           capture_output=True, timeout=60)
            if pid:
                try:
                    wait_pid_gone(pid, 20)
                except TimeoutError:
                    os.kill(pid, signal.SIGKILL)
                    wait_pid_gone(pid, 5)
            self.running = False
        LOGS.pop("postfix maillog", None)
        remove_tmpdir(self.dir)

    def flush(self):
        """Ask the queue manager to retry deferred mail now."""
        subprocess.run([POSTFIX, "-c", self.dir, "flush"],
                       capture_output=True, timeout=30)

    def log_text(self):
        return read_text(self.maillog)


# --------------------------------------------------------------------------
# the auth service (tests/integration/authsvc.py, written separately)

AUTHSVC = os.path.join(HERE, "authsvc.py")


def authsvc_users(dovecot, postfix=None):
    """The auth service's users file for the Dovecot fixture's users: each
    to its password and to the Dovecot ports by protocol, and to Postfix
    for SMTP when postfix is given (the format is at the top of
    authsvc.py)."""
    ports = {"imap": dovecot.imap_port, "pop3": dovecot.pop3_port}
    if postfix is not None:
        ports["smtp"] = postfix.port
    return {name: {"pass": pw, "server": "127.0.0.1", "ports": dict(ports)}
            for name, pw in dovecot.users.items()}


class AuthSvc:
    """tests/integration/authsvc.py on a free port with a users file.

    users is written to USERS.json as given; see authsvc.py for its format.
    """

    def __init__(self, users):
        self.users = users
        self.dir = None
        self.proc = None
        self.port = None

    def start(self, port=0):
        """Start on port (0: the kernel picks one)."""
        if not os.path.exists(AUTHSVC):
            raise HarnessError("%s is missing" % AUTHSVC)
        self.dir = make_tmpdir("authsvc")
        self.users_file = os.path.join(self.dir, "users.json")
        self.write_users(self.users)
        self.log = os.path.join(self.dir, "requests.log")
        LOGS["authsvc requests"] = self.log
        self.stderr = os.path.join(self.dir, "stderr.log")
        self.proc = spawn([PYTHON, AUTHSVC, str(port), self.users_file,
                           self.log],
                          "authsvc", stdout=subprocess.PIPE,
                          stderr=open(self.stderr, "wb"))
        line = self._read_port_line(10)
        m = re.search(rb"\d+", line or b"")
        if not m:
            self.stop()
            raise HarnessError("authsvc printed no port: %r\n%s"
                               % (line, tail(self.stderr)))
        self.port = int(m.group(0))
        wait_port(self.port, 10, self.proc)
        return self

    def _read_port_line(self, timeout):
        import select
        r, _w, _x = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            return None
        return self.proc.stdout.readline()

    @property
    def url(self):
        return "http://127.0.0.1:%d/auth" % self.port

    def write_users(self, users):
        """Replace the users file atomically (authsvc.py re-reads it for
        every request)."""
        self.users = users
        tmp = self.users_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(users, f, indent=1)
        os.rename(tmp, self.users_file)

    def requests(self):
        """The logged requests, oldest first: one dict each (see
        authsvc.py: time, path, mode, headers, user, result)."""
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return []
        out = []
        for ln in lines:
            try:
                out.append(json.loads(ln))
            except ValueError:
                pass
        return out

    def ask(self, user, password, protocol="imap", method="plain",
            path="/auth", extra=None):
        """One auth request made directly (not through postern); returns
        the response headers as a dict."""
        import http.client
        import urllib.parse
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Auth-Method": method,
                   "Auth-User": urllib.parse.quote(user),
                   "Auth-Pass": urllib.parse.quote(password),
                   "Auth-Protocol": protocol,
                   "Auth-Login-Attempt": "1",
                   "Client-IP": "127.0.0.1"}
        headers.update(extra or {})
        try:
            c.request("GET", path, headers=headers)
            r = c.getresponse()
            r.read()
            return dict(r.getheaders())
        finally:
            c.close()

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, 10)
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None
        LOGS.pop("authsvc requests", None)
        remove_tmpdir(self.dir)


# --------------------------------------------------------------------------
# postern.conf writer (libconfig syntax)

class Raw(str):
    """A value written into the configuration as is (e.g. a bad token)."""


def _cfg_value(v, indent):
    pad = "    " * indent
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
    if isinstance(v, dict):
        inner = "".join("%s    %s = %s;\n" % (pad, k, _cfg_value(x, indent + 1))
                        for k, x in v.items())
        return "{\n%s%s}" % (inner, pad)
    if isinstance(v, (list, tuple)):
        if all(isinstance(x, str) for x in v):
            # an array of strings
            return "[" + ", ".join(_cfg_value(x, indent) for x in v) + "]"
        # a list: groups (servers) or pairs (auth_http_header)
        items = ",\n".join("%s    %s" % (pad, _cfg_value(x, indent + 1))
                           for x in v)
        return "(\n%s\n%s)" % (items, pad)
    raise TypeError("cannot write %r as libconfig" % (v,))


def libconfig(settings):
    """Top-level settings (a dict) as libconfig text."""
    return "".join("%s = %s;\n" % (k, _cfg_value(v, 0))
                   for k, v in settings.items())


def write_auth_file(path, entries):
    """Write postern's built-in auth file.

    entries: iterable of (name, hash, "SERVER:PORT"[, backend_user]);
    hash is written as given: "{PLAIN}secret" or a crypt string (see
    crypt_hash()).
    """
    with open(path, "w") as f:
        f.write("# written by tests/integration/harness.py\n")
        for e in entries:
            f.write(" ".join(str(x) for x in e) + "\n")
    os.chmod(path, 0o600)
    return path


def crypt_hash(password):
    """A SHA-512 crypt(3) hash of password, made with `openssl passwd -6`."""
    r = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                       input=password, capture_output=True, text=True,
                       timeout=30, check=True)
    return r.stdout.strip()


# --------------------------------------------------------------------------
# postern

SANITIZER_MARK = re.compile(r"ERROR: (Address|Leak|Thread)Sanitizer|"
                            r"runtime error: |SUMMARY: \w+Sanitizer")


class Postern:
    """One postern process from a generated configuration.

    servers: list of dicts, each a `servers` entry; "protocol" is required,
    "listen" defaults to "127.0.0.1:FREEPORT" (the chosen port is in
    .ports, in order).  mail: settings of the `mail` group; top: top-level
    settings.  auth: "http://..." for auth_http, or a list of auth_file
    entries (see write_auth_file) unless mail or a server names one itself.
    """

    def __init__(self, servers, mail=None, top=None, auth=None,
                 log_level="debug", tag="postern"):
        self.dir = make_tmpdir(tag)
        self.conf = os.path.join(self.dir, "postern.conf")
        self.pidfile = os.path.join(self.dir, "postern.pid")
        self.error_log = os.path.join(self.dir, "error.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.log_level = log_level
        self.env = None             # the process environment, if not ours
        self.preexec = None         # run in the child before exec
        self.proc = None
        self.ports = []
        self.servers = []
        for s in servers:
            s = dict(s)
            if "listen" not in s:
                port = free_port()
                s = dict(listen="127.0.0.1:%d" % port, **s)
            else:
                m = re.match(r"^(?:[^ ]*:)?(\d+)(?: |$)", s["listen"])
                port = int(m.group(1)) if m else None
            self.ports.append(port)
            self.servers.append(s)
        self.mail = dict(mail or {})
        if auth is not None and "auth_http" not in self.mail \
                and "auth_file" not in self.mail:
            if isinstance(auth, str):
                self.mail["auth_http"] = auth
            else:
                self.auth_file = write_auth_file(
                    os.path.join(self.dir, "auth_file"), auth)
                self.mail["auth_file"] = self.auth_file
        self.top = {
            "daemon": False,
            "pid": self.pidfile,
            "error_log": "%s %s" % (self.error_log, log_level),
            "worker_threads": 4,
            "relay_threads": 1,
        }
        self.top.update(top or {})
        self.write_conf()

    @property
    def port(self):
        return self.ports[0]

    def settings(self):
        mail = dict(self.mail)
        mail["servers"] = self.servers
        s = dict(self.top)
        s["mail"] = mail
        return s

    def write_conf(self, text=None):
        """(Re)write postern.conf from the settings, or the given text."""
        if text is None:
            text = "# written by tests/integration/harness.py\n" + \
                libconfig(self.settings())
        tmp = self.conf + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.conf)
        return self.conf

    def add_server(self, server):
        """Add a servers entry (a free port if no listen); returns its port."""
        s = dict(server)
        if "listen" not in s:
            port = free_port()
            s = dict(listen="127.0.0.1:%d" % port, **s)
        else:
            port = int(re.search(r"(\d+)", s["listen"]).group(1))
        self.servers.append(s)
        self.ports.append(port)
        return port

    def command(self, *args):
        return [POSTERN_BIN, "-c", self.conf] + list(args)

    def run(self, *args, timeout=30):
        """Run postern -c CONF ARGS to completion (e.g. -t, -s reload)."""
        return subprocess.run(self.command(*args), capture_output=True,
                              text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def start(self, wait=True, timeout=15.0, args=("-f",)):
        """Start in the foreground; wait until every port accepts."""
        LOGS["postern error.log"] = self.error_log
        LOGS["postern stderr"] = self.stderr_path
        self.stderr_file = open(self.stderr_path, "ab")
        self.proc = spawn(self.command(*args), "postern", env=self.env,
                          preexec_fn=self.preexec,
                          stdout=self.stderr_file, stderr=subprocess.STDOUT)
        if wait:
            try:
                for port in self.ports:
                    if port:
                        wait_port(port, timeout, self.proc)
            except (HarnessError, TimeoutError) as e:
                raise HarnessError("postern did not start: %s\n%s"
                                   % (e, self.logs()))
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig):
        """Send sig to the postern process."""
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=15.0):
        """Wait for the process to end on its own; returns its status."""
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError("postern (pid %d) still running after %.0fs\n%s"
                               % (self.proc.pid, timeout, self.logs()))
        forget_process(self.proc)
        return status

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Stop by pid: sig, then SIGKILL after timeout.  Returns status."""
        status = None
        if self.proc is not None:
            status = stop_process(self.proc, sig, timeout)
        if getattr(self, "stderr_file", None):
            self.stderr_file.close()
            self.stderr_file = None
        return status

    def log_text(self):
        return read_text(self.error_log)

    def stderr_text(self):
        return read_text(self.stderr_path)

    def logs(self, lines=40):
        return logs_report({"postern error.log": self.error_log,
                            "postern stderr": self.stderr_path}, lines)

    def sanitizer_findings(self):
        """Lines of ASan/UBSan/LSan reports postern wrote to its stderr."""
        text = self.stderr_text()
        if not SANITIZER_MARK.search(text):
            return ""
        return "\n".join(text.splitlines()[-80:])

    def cleanup(self):
        """Stop, keep any sanitizer report, remove the directory."""
        self.stop()
        self.sanitizer_report = self.sanitizer_findings()
        if LOGS.get("postern error.log") == self.error_log:
            LOGS.pop("postern error.log", None)
            LOGS.pop("postern stderr", None)
        remove_tmpdir(self.dir)


# --------------------------------------------------------------------------
# line-oriented client for talking to postern or a backend directly

class LineClient:
    """A blocking TCP client with a timeout, reading CRLF lines."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def readline(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                line, self.buf = self.buf, b""
                return line
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.readline()

    def line_starting(self, prefix, limit=50):
        """The first line that starts with prefix (those before it read
        and dropped); b"" at EOF."""
        for _ in range(limit):
            line = self.readline()
            if line.startswith(prefix) or not line:
                return line
        raise AssertionError("no line starting with %r in %d lines"
                             % (prefix, limit))

    def closed_by_peer(self, timeout=5.0):
        """True if the peer closes the connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# base of the small in-process fake servers (imap_util, pop3_util, smtp_util)

NSS_WRAPPER = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"


def nss_wrapper_env(hosts=None, **files):
    """An environment in which the process's name lookups are answered by
    nss_wrapper (libnss-wrapper) from files: `hosts` for host names (so a
    test can name hosts and change what they resolve to), and any of
    NSS_WRAPPER_PASSWD=..., NSS_WRAPPER_GROUP=... for users and groups."""
    here = os.path.dirname(os.path.abspath(__file__))
    if hosts is not None:
        files["NSS_WRAPPER_HOSTS"] = hosts
    return dict(os.environ, LD_PRELOAD=NSS_WRAPPER,
                # sanitizer runtimes refuse a libc opened with RTLD_DEEPBIND,
                # and the wrapper is preloaded ahead of them
                NSS_WRAPPER_DISABLE_DEEPBIND="1",
                ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "")
                + ":verify_asan_link_order=0",
                # the wrapper's own locking is not ours to judge
                TSAN_OPTIONS=os.environ.get("TSAN_OPTIONS", "")
                + ":suppressions=" + os.path.join(here,
                                                  "nss_wrapper.tsan.supp"),
                **files)


class FakeServer:
    """A scripted TCP server on a free port of 127.0.0.1, in this process.

    The constructor binds, listens and starts the accept loop in a daemon
    thread; every accepted connection gets its own daemon thread, which
    calls handle(conn, index) (index: 0, 1, ... in accept order) with
    conn's timeout set to conn_timeout.  A subclass sets its own attributes
    first, then calls FakeServer.__init__, and overrides handle (and, for
    a per-connection record made in accept order, on_accept).

    Kept for tests: .port, .accepted (connections so far), .peers (their
    addresses), .lock (an RLock for the subclass's records too).

    stop() (also on leaving a with block) ends the accept loop, closes the
    listening socket, shuts down and closes every connection still open
    (so handlers blocked in recv() see EOF) and joins the threads; every
    wait in it is bounded, so it always returns."""

    backlog = 16
    accept_timeout = 0.2     # each accept() wait; stop() acts within this
    conn_timeout = 10.0      # each accepted socket's timeout
    join_timeout = 5.0       # stop()'s wait for each group of threads
    lifetime = 1200.0        # the accept loop ends by itself after this

    def __init__(self):
        self.lock = threading.RLock()
        self.accepted = 0
        self.peers = []
        self.stopping = False
        self._open = []          # accepted sockets not closed yet
        self._threads = []       # connection threads
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.sock.listen(self.backlog)
            self.sock.settimeout(self.accept_timeout)
        except OSError:
            self.sock.close()
            raise
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(
            target=self._serve, daemon=True,
            name="%s:%d accept" % (type(self).__name__, self.port))
        self.thread.start()

    def on_accept(self, index, peer):
        """Called in the accept thread, in accept order, with self.lock
        held, before connection index's handle() starts."""

    def handle(self, conn, index):
        """Serve one connection; conn is closed after it returns."""
        raise NotImplementedError

    def drain(self, conn, limit=100000):
        """Read and drop what conn receives until EOF (at most limit
        reads); timeouts and errors propagate to the caller."""
        for _ in range(limit):
            if not conn.recv(4096):
                return

    def _serve(self):
        deadline = time.monotonic() + self.lifetime
        while not self.stopping and time.monotonic() < deadline:
            try:
                c, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                if self.stopping:
                    c.close()
                    return
                index = self.accepted
                self.accepted += 1
                self.peers.append(peer)
                self._open.append(c)
                self.on_accept(index, peer)
                t = threading.Thread(
                    target=self._connection, args=(c, index), daemon=True,
                    name="%s:%d conn %d" % (type(self).__name__, self.port,
                                            index))
                self._threads.append(t)
            t.start()
        with self.lock:
            self.sock.close()

    def _connection(self, c, index):
        try:
            c.settimeout(self.conn_timeout)
            self.handle(c, index)
        finally:
            self._close(c)

    def _close(self, c):
        with self.lock:
            if c in self._open:
                self._open.remove(c)
            c.close()

    def stop(self):
        self.stopping = True
        if self.thread is not threading.current_thread():
            self.thread.join(self.join_timeout)
        with self.lock:
            self.sock.close()
            # under the lock: a handler thread closes its socket (and frees
            # the descriptor) under it too
            for c in self._open:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self._open = []
            threads = list(self._threads)
        deadline = time.monotonic() + self.join_timeout
        for t in threads:
            if t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def backends_missing(*programs):
    """Skip (or fail under POSTERN_REQUIRE_BACKENDS=1) if programs are
    missing; call from a fixture."""
    import pytest
    absent = missing(*programs)
    msg = None
    if absent:
        msg = "not installed: %s (see tests/setup-debian.sh)" % \
            ", ".join(absent)
    elif os.geteuid() != 0:
        msg = "the Dovecot/Postfix fixtures need root"
    if msg:
        if REQUIRE_BACKENDS:
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)


if __name__ == "__main__":
    # Manual check: python3 harness.py starts Dovecot + Postfix and waits.
    dc = Dovecot().start()
    pf = Postfix(dc).start()
    print("dovecot imap %d pop3 %d lmtp %d; postfix smtp %d; dirs %s %s"
          % (dc.imap_port, dc.pop3_port, dc.lmtp_port, pf.port, dc.dir,
             pf.dir))
    sys.stdout.flush()
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        pf.stop()
        dc.stop()
