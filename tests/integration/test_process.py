"""postern as a process: the command line (-c -t -T -f -s -v -V -h), the pid
file, signals (HUP reload, QUIT graceful stop, TERM fast stop, USR1
reopen), daemon mode, and the errors an operator can cause (bad
configuration, port in use, a second instance).

None of this needs a backend: the auth_file sends every user to a port
nobody listens on, and no test logs in.
"""

import base64
import os
import re
import select
import shlex
import signal
import socket
import ssl
import subprocess
import time

import pytest

import harness
import imap_util
import smtp_util

ERROR_LEVELS = re.compile(r"\[(emerg|alert|crit|error)\]")


def package_version():
    """The version configure put in config.h (or configure.ac's AC_INIT)."""
    path = os.path.join(harness.BUILDDIR, "config.h")
    try:
        with open(path) as f:
            m = re.search(r'#define PACKAGE_VERSION "([^"]+)"', f.read())
            if m:
                return m.group(1)
    except OSError:
        pass
    with open(os.path.join(harness.SRCDIR, "configure.ac")) as f:
        m = re.search(r"AC_INIT\(\[postern\],\s*\[([^\]]+)\]", f.read())
    return m.group(1)


def simple(postern_config, servers=None, **kw):
    """A postern with one IMAP server whose users lead nowhere."""
    if servers is None:
        servers = [{"protocol": "imap"}]
    nowhere = "127.0.0.1:%d" % harness.free_port()
    kw.setdefault("auth", [("alice", "{PLAIN}alice-pw", nowhere)])
    return postern_config(servers, **kw)


def line_of(path, needle):
    """The 1-based line of path where needle last occurs."""
    found = None
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if needle in line:
                found = n
    assert found, "%r not in %s" % (needle, path)
    return found


def output(r):
    return (r.stdout or "") + (r.stderr or "")


def greeting(port):
    with harness.LineClient(port, timeout=10) as c:
        return c.readline()


def refused(port):
    """True if nothing accepts on port."""
    return not harness.port_open(port)


# --------------------------------------------------------------------------
# informational options

def test_version_v(postern_bin):
    r = subprocess.run([postern_bin, "-v"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, output(r)
    assert "postern" in output(r)
    assert package_version() in output(r)


def test_version_V(postern_bin):
    r = subprocess.run([postern_bin, "-V"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, output(r)
    assert package_version() in output(r)
    assert "configure arguments" in output(r).lower()


def test_version_V_names_configure_arguments_as_given(postern_bin):
    """-V gives configure's arguments as they were given, an argument with
    spaces or quotes in it (CFLAGS="-g -O2") included, as the build's
    config.status recorded them."""
    status = os.path.join(harness.BUILDDIR, "config.status")
    if not os.path.exists(status):
        pytest.skip("no config.status in " + harness.BUILDDIR)
    recorded = subprocess.run(
        ["sh", "-c", 'eval "$(grep "^ac_cs_config=" "$1")"; '
         'printf %s "$ac_cs_config"', "sh", status],
        capture_output=True, text=True, timeout=30, check=True).stdout
    r = subprocess.run([postern_bin, "-V"], capture_output=True, text=True,
                       timeout=30)
    line = next(ln for ln in r.stdout.splitlines()
                if ln.startswith("configure arguments:"))
    given = line[len("configure arguments:"):]
    assert shlex.split(given) == shlex.split(recorded), (given, recorded)


def test_help(postern_bin):
    r = subprocess.run([postern_bin, "-h"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, output(r)
    for opt in ("-c", "-t", "-T", "-s", "-f", "-v", "-V"):
        assert opt in output(r), "usage does not mention %s" % opt


def test_unknown_option_fails(postern_bin):
    r = subprocess.run([postern_bin, "-Z"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0
    assert r.stderr.strip(), "no message for an unknown option"


def test_bad_signal_name_fails(postern_config):
    p = simple(postern_config)
    r = p.run("-s", "dance")
    assert r.returncode != 0
    assert "dance" in output(r)


# --------------------------------------------------------------------------
# -t and -T

def test_t_good_file(postern_config):
    p = simple(postern_config)
    r = p.run("-t")
    assert r.returncode == 0, output(r)
    assert "configuration file %s test is successful" % p.conf in output(r)
    # testing starts nothing
    assert not os.path.exists(p.pidfile)
    assert refused(p.port)


def test_t_does_not_bind(postern_config):
    p = simple(postern_config)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", p.port))
        s.listen(1)
        r = p.run("-t")
    assert r.returncode == 0, output(r)


def test_T_dumps_configuration(postern_config):
    p = simple(postern_config)
    r = p.run("-T")
    assert r.returncode == 0, output(r)
    assert "test is successful" in output(r)
    assert "127.0.0.1:%d" % p.port in r.stdout


def test_relay_threads_auto_is_one_per_cpu(postern_config):
    p = simple(postern_config, top={"relay_threads": "auto"})
    r = p.run("-T")
    assert r.returncode == 0, output(r)
    assert 'relay_threads = "auto";' in r.stdout
    p.start()
    assert greeting(p.port).startswith(b"* OK"), p.logs()
    assert re.search(r"started: .* %d relay threads" % os.cpu_count(),
                     p.log_text()), p.logs()


# --------------------------------------------------------------------------
# the acceptor's greeting

class Holder:
    """Keeps a worker busy where no client's silence can free it: a login
    whose backend accepts and never greets (imap_util.FakeBackend "silent";
    the worker waits in the backend login).  Its IMAP server's auth sends
    alice there: pass holder_auth(backend) as simple()'s auth."""

    def __init__(self, port, backend):
        self.backend = backend
        self.c = harness.LineClient(port, timeout=10)
        assert self.c.readline().startswith(b"* OK")
        before = backend.accepted
        self.c.send("A LOGIN alice alice-pw\r\n")
        harness.wait_for(lambda: backend.accepted > before, 10,
                         what="the worker to reach the backend")

    def close(self):
        """The backend goes: the worker ends the session and is free."""
        self.backend.stop()
        self.c.close()


def holder_auth(backend):
    return [("alice", "{PLAIN}alice-pw", "127.0.0.1:%d" % backend.port)]


def nothing_within(sock, seconds):
    """True when sock received nothing for `seconds` (a wrong greeting
    would come at once, so the wait only bounds the check)."""
    sock.settimeout(seconds)
    try:
        sock.recv(100)
    except socket.timeout:
        return True
    return False


EARLY = {
    # name: (server settings, the greeting as a regular expression)
    "imap": ({"protocol": "imap"}, rb"\* OK IMAP4 ready\r\n"),
    "pop3": ({"protocol": "pop3"}, rb"\+OK POP3 ready\r\n"),
    "smtp": ({"protocol": "smtp"},
             rb"220 proxy\.example\.test ESMTP ready\r\n"),
    # a timestamp of its own, which the worker checks the digest against
    "pop3 with APOP": ({"protocol": "pop3", "pop3_auth": ["plain", "apop"]},
                       rb"\+OK POP3 ready <\d+\.\d+@proxy\.example\.test>"
                       rb"\r\n"),
    # the acceptor waits out the delay, then greets
    "smtp_greeting_delay": ({"protocol": "smtp",
                             "smtp_greeting_delay": "100ms"},
                            rb"220 proxy\.example\.test ESMTP ready\r\n"),
}


@pytest.mark.parametrize("case", sorted(EARLY))
def test_greeting_while_every_worker_is_busy(postern_config, case):
    """A plain connection is greeted by the acceptor: its client's first
    command then waits in the socket for the worker, and is answered."""
    server, want = EARLY[case]
    proto = server["protocol"]
    with imap_util.FakeBackend("silent") as backend:
        p = simple(postern_config, servers=[{"protocol": "imap"}, server],
                   top={"worker_threads": 1}, auth=holder_auth(backend),
                   mail={"server_name": "proxy.example.test",
                         "timeout": "60s"})
        p.start()
        holder = Holder(p.ports[0], backend)
        with harness.LineClient(p.ports[1], timeout=10) as c:
            got = c.readline()
            assert re.fullmatch(want, got), (got, p.logs())
            c.send({"imap": "B NOOP\r\n", "pop3": "NOOP\r\n",
                    "smtp": "NOOP\r\n"}[proto])
            holder.close()          # the worker comes free for it
            assert c.readline().startswith(
                {"imap": b"B OK", "pop3": b"+OK", "smtp": b"250"}[proto]), \
                p.logs()
    assert p.alive()


NOT_EARLY = {
    # name: (server settings, mail settings, what the client sends first)
    "refused by access": (
        {"protocol": "imap", "access": ["deny 127.0.0.1", "allow all"]}, {},
        None),
    "PROXY header first": (
        {"protocol": "imap", "proxy_protocol": True}, {"set_real_ip_from":
                                                      ["127.0.0.1"]},
        b"PROXY TCP4 192.0.2.7 127.0.0.1 4000 143\r\n"),
}


@pytest.mark.parametrize("case", sorted(NOT_EARLY))
def test_no_early_greeting(postern_config, case):
    """Where the access rules or the PROXY header come first, only the
    worker greets: nothing comes while the one worker is busy."""
    server, mail, first = NOT_EARLY[case]
    server = dict(server)
    if server.pop("proxy_protocol", False):
        server["listen"] = "127.0.0.1:%d proxy_protocol" % harness.free_port()
    with imap_util.FakeBackend("silent") as backend:
        p = simple(postern_config, servers=[{"protocol": "imap"}, server],
                   top={"worker_threads": 1}, auth=holder_auth(backend),
                   mail=dict(mail, timeout="60s"))
        p.start()
        holder = Holder(p.ports[0], backend)
        c = socket.create_connection(("127.0.0.1", p.ports[1]), timeout=10)
        try:
            if first:
                c.sendall(first)
            assert nothing_within(c, 0.5), p.logs()
            holder.close()
            c.settimeout(10)
            got = c.recv(200)
            if case == "refused by access":
                assert got == b"", got
            else:
                assert got[:1] in (b"*", b"+", b"2"), (got, p.logs())
        finally:
            c.close()
    assert p.alive()


def test_threads_are_named(postern_config):
    """ps -L, top -H and perf show each thread's stage."""
    p = simple(postern_config, top={"worker_threads": 3, "relay_threads": 2})
    p.start()
    assert greeting(p.port).startswith(b"* OK"), p.logs()
    task = "/proc/%d/task" % p.pid
    want = ["acceptor", "relay 0", "relay 1", "worker 0", "worker 1",
            "worker 2"]

    def names():
        # each thread names itself as it starts: wait until all have
        got = sorted(open(os.path.join(task, t, "comm")).read().strip()
                     for t in os.listdir(task))
        return got if [x for x in got if x != "postern"] == want else None
    harness.wait_for(names, 10, what="every thread's name")


BAD_CONFIGS = {
    # name: (postern_config kwargs, text on the offending line)
    "unknown top-level setting": (
        {"top": {"no_such_setting": 1}}, "no_such_setting"),
    "unknown server setting": (
        {"servers": [{"protocol": "imap", "no_such_thing": True}]},
        "no_such_thing"),
    "wrong type": ({"top": {"worker_threads": "many"}}, "worker_threads"),
    "out of range": ({"top": {"worker_threads": 0}}, "worker_threads"),
    "relay_threads neither a number nor auto": (
        {"top": {"relay_threads": "many"}}, "relay_threads"),
    "wrong scope": ({"mail": {"daemon": True}}, "daemon"),
    "bad protocol": (
        {"servers": [{"protocol": "nntp"}]}, "nntp"),
    "bad time": ({"mail": {"timeout": "5 parsecs"}}, "timeout"),
    "openssl-only setting": (
        {"mail": {"ssl_conf_command": "Options KTLS"}}, "ssl_conf_command"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_t_bad_file(postern_config, case):
    kw, needle = BAD_CONFIGS[case]
    p = simple(postern_config, **kw)
    line = line_of(p.conf, needle)
    r = p.run("-t")
    assert r.returncode != 0, output(r)
    assert "configuration file %s test failed" % p.conf in output(r)
    assert "%s:%d" % (p.conf, line) in r.stderr, \
        "no %s:%d in stderr:\n%s" % (p.conf, line, r.stderr)
    assert not os.path.exists(p.pidfile)


def test_t_syntax_error(postern_config):
    p = simple(postern_config)
    with open(p.conf) as f:
        text = f.read()
    p.write_conf(text.replace("worker_threads = 4;", "worker_threads = 4 }"))
    r = p.run("-t")
    assert r.returncode != 0
    assert "test failed" in output(r)
    assert re.search(re.escape(p.conf) + r":\d+", r.stderr), r.stderr


def test_t_missing_file(postern_bin, tmp_path):
    missing = str(tmp_path / "nope.conf")
    r = subprocess.run([postern_bin, "-c", missing, "-t"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert missing in r.stderr
    assert "test failed" in output(r)


def test_t_error_log_that_cannot_be_opened(postern_config):
    """-t opens each error_log file for appending, as start-up does, and
    reports the one it cannot open."""
    p = simple(postern_config)
    bad = os.path.join(p.dir, "no-such-dir", "error.log")
    p.servers[0]["error_log"] = bad + " info"
    p.write_conf()
    r = p.run("-t")
    assert r.returncode != 0, output(r)
    assert 'open() "%s" failed' % bad in r.stderr, r.stderr
    assert "configuration file %s test failed" % p.conf in output(r)
    assert "test is successful" not in output(r)
    # the same file as start-up sees it
    p.start(wait=False)
    assert p.wait_exit(15) != 0
    assert 'open() "%s" failed' % bad in p.stderr_text(), p.logs()


@pytest.mark.skipif(os.geteuid() != 0, reason="`user` is looked up as root")
@pytest.mark.parametrize("user", ["postern-no-such-user",
                                  "nobody postern-no-such-group"])
def test_t_unknown_user(postern_config, user):
    """As root, loading looks up `user` and its group, as NGINX does: an
    unknown one is an error of the file's `user` line."""
    p = simple(postern_config, top={"user": user})
    r = p.run("-t")
    assert r.returncode != 0, output(r)
    assert re.search(r'\[emerg\] %s:\d+: user: get(pw|gr)nam\('
                     r'"postern-no-such-\w+"\) failed' % re.escape(p.conf),
                     r.stderr), r.stderr
    assert "configuration file %s test failed" % p.conf in output(r)


def test_both_auth_kinds_is_an_error(postern_config):
    p = simple(postern_config, auth=None,
               mail={"auth_http": "http://127.0.0.1:9/auth",
                     "auth_file": "auth_file"})
    harness.write_auth_file(os.path.join(p.dir, "auth_file"),
                            [("alice", "{PLAIN}alice-pw", "127.0.0.1:9")])
    r = p.run("-t")
    assert r.returncode != 0, output(r)


# --------------------------------------------------------------------------
# running in the foreground, the pid file

def test_foreground_pid_file_lifecycle(postern_config):
    p = simple(postern_config, servers=[{"protocol": "imap"},
                                        {"protocol": "pop3"},
                                        {"protocol": "smtp"}])
    p.start(wait=False)
    # the pid file appears only once every listener is bound
    pid = harness.wait_for(lambda: harness.read_pidfile(p.pidfile)
                           or (not p.alive() and "exited"),
                           15, 0.01, "the pid file")
    assert pid == p.pid, p.logs()
    for port in p.ports:
        assert harness.port_open(port), "pid file before port %d" % port
    status = p.stop(signal.SIGTERM)
    assert status == 0, p.logs()
    assert not os.path.exists(p.pidfile), "pid file left behind"


def test_greetings(postern_config):
    p = simple(postern_config, servers=[{"protocol": "imap"},
                                        {"protocol": "pop3"},
                                        {"protocol": "smtp"}],
               mail={"server_name": "proxy.example.test"})
    p.start()
    assert greeting(p.ports[0]).startswith(b"* OK"), p.logs()
    assert greeting(p.ports[1]).startswith(b"+OK"), p.logs()
    assert greeting(p.ports[2]).startswith(b"220 proxy.example.test"), \
        p.logs()


def test_second_instance_refused(postern_config):
    first = simple(postern_config)
    first.start()
    second = simple(postern_config, top={"pid": first.pidfile})
    r = second.run("-f", timeout=30)
    assert r.returncode != 0, output(r)
    text = output(r) + second.log_text()
    assert first.pidfile in text or "running" in text.lower(), text
    assert first.alive()
    assert harness.read_pidfile(first.pidfile) == first.pid
    assert harness.port_open(first.port)


def test_port_in_use(postern_config):
    p = simple(postern_config)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", p.port))
        s.listen(1)
        p.start(wait=False)
        status = p.wait_exit(15)
    assert status != 0
    text = p.stderr_text() + p.log_text()
    assert "127.0.0.1:%d" % p.port in text, text
    assert "in use" in text.lower(), text
    assert not os.path.exists(p.pidfile)


# --------------------------------------------------------------------------
# signals

def test_hup_reload_adds_listener(postern_config):
    p = simple(postern_config)
    p.start()
    new_port = p.add_server({"protocol": "pop3"})
    p.write_conf()
    assert refused(new_port)
    p.kill(signal.SIGHUP)
    harness.wait_port(new_port, 15, p.proc)
    assert greeting(new_port).startswith(b"+OK"), p.logs()
    assert harness.port_open(p.port)
    assert p.alive()
    assert harness.read_pidfile(p.pidfile) == p.pid


def test_hup_reload_removes_listener(postern_config):
    p = simple(postern_config, servers=[{"protocol": "imap"},
                                        {"protocol": "pop3"}])
    p.start()
    gone = p.ports[1]
    p.servers.pop()
    p.ports.pop()
    p.write_conf()
    p.kill(signal.SIGHUP)
    harness.wait_for(lambda: refused(gone), 15, what="port %d to close"
                     % gone)
    assert harness.port_open(p.port)
    assert p.alive()


def test_hup_reload_bad_file_keeps_running(postern_config):
    p = simple(postern_config)
    p.start()
    new_port = p.add_server({"protocol": "pop3"})
    p.top["no_such_setting"] = 1
    p.write_conf()
    before = len(p.log_text())
    p.kill(signal.SIGHUP)

    def errors():
        return [ln for ln in p.log_text()[before:].splitlines()
                if ERROR_LEVELS.search(ln) and p.conf in ln]
    harness.wait_for(errors, 15, what="an error line about the reload")
    time.sleep(0.5)                  # anything else it was going to log
    assert len(errors()) == 1, "\n".join(errors())
    assert "no_such_setting" in errors()[0]
    assert p.alive()
    assert harness.port_open(p.port)
    assert greeting(p.port).startswith(b"* OK")
    assert refused(new_port), "the bad file was applied"
    # and a good file afterwards is taken
    del p.top["no_such_setting"]
    p.write_conf()
    p.kill(signal.SIGHUP)
    harness.wait_port(new_port, 15, p.proc)


def test_hup_reload_moves_pid_file(postern_config):
    """A reload with a new `pid` writes that file and removes the old one,
    so -s with the new file finds the process."""
    p = simple(postern_config)
    p.start()
    old = p.pidfile
    new = os.path.join(p.dir, "new.pid")
    p.top["pid"] = new
    p.write_conf()
    p.kill(signal.SIGHUP)
    harness.wait_for(lambda: harness.read_pidfile(new) == p.pid, 15,
                     what="the new pid file")
    harness.wait_for(lambda: not os.path.exists(old), 10,
                     what="the old pid file to go")
    r = p.run("-s", "stop")
    assert r.returncode == 0, output(r)
    assert p.wait_exit(15) == 0, p.logs()
    assert not os.path.exists(new)


def test_hup_reload_pid_file_under_another_name(postern_config):
    """A `pid` that names the same file another way (a symbolic link to
    its directory) is no new pid file: the reload keeps it, -s finds it."""
    p = simple(postern_config)
    p.start()
    link = os.path.join(p.dir, "run-link")
    os.symlink(os.path.dirname(p.pidfile), link)
    p.top["pid"] = os.path.join(link, os.path.basename(p.pidfile))
    p.write_conf()
    p.kill(signal.SIGHUP)
    harness.wait_for(lambda: "reconfigured from" in p.log_text(), 15,
                     what="the reload")
    assert harness.read_pidfile(p.pidfile) == p.pid, "the pid file is gone"
    r = p.run("-s", "stop")
    assert r.returncode == 0, output(r)
    assert p.wait_exit(15) == 0, p.logs()


def test_hup_reload_pid_file_not_writable(postern_config):
    """If the new pid file cannot be written, the reload fails with one
    error line and the old configuration, pid file included, stays."""
    p = simple(postern_config)
    p.start()
    new_port = p.add_server({"protocol": "pop3"})
    bad = os.path.join(p.dir, "no-such-dir", "postern.pid")
    p.top["pid"] = bad
    p.write_conf()
    before = len(p.log_text())
    p.kill(signal.SIGHUP)

    def errors():
        return [ln for ln in p.log_text()[before:].splitlines()
                if ERROR_LEVELS.search(ln)]
    harness.wait_for(errors, 15, what="an error line about the reload")
    time.sleep(0.5)                  # anything else it was going to log
    assert len(errors()) == 1, "\n".join(errors())
    assert "reload failed, old configuration kept" in errors()[0]
    assert bad in errors()[0]
    assert refused(new_port), "the new configuration was applied"
    assert harness.read_pidfile(p.pidfile) == p.pid
    assert p.alive()


def test_hup_reload_names_settings_that_need_a_restart(postern_config):
    """Top-level settings set up once at start-up get one warning each,
    with the old and the new value, instead of being ignored silently."""
    p = simple(postern_config)
    p.start()
    p.top.update({"worker_threads": 6, "relay_threads": "auto",
                  "worker_rlimit_nofile": 2000, "user": "nobody nogroup",
                  "daemon": True})
    p.write_conf()
    before = len(p.log_text())
    p.kill(signal.SIGHUP)
    harness.wait_for(lambda: "reconfigured" in p.log_text()[before:], 15,
                     what="the reload")
    text = p.log_text()[before:]
    for name, was, now in (("worker_threads", "4", "6"),
                           ("relay_threads", "1", "auto"),
                           ("worker_rlimit_nofile", "unset", "2000"),
                           ("user", "unset", '"nobody nogroup"'),
                           ("daemon", "off", "on")):
        lines = [ln for ln in text.splitlines() if '"%s"' % name in ln]
        assert len(lines) == 1, text
        assert "[warn]" in lines[0], lines[0]
        assert "changed from %s to %s, which takes effect after a restart" \
            % (was, now) in lines[0], lines[0]
    # what a reload applies is not named
    assert "worker_connections" not in text, text
    assert p.alive()


def test_hup_reload_raises_worker_connections(postern_config):
    """A reload that raises worker_connections makes room in the queue
    for that many connections too."""
    p = simple(postern_config, top={"worker_threads": 1,
                                    "worker_connections": 2})
    p.start()
    # the harness's probe of the port counts until its session has ended
    harness.wait_for(lambda: re.search(r"\*1 .* while ", p.log_text()), 10,
                     what="the probe's session to end")
    p.top["worker_connections"] = 5
    p.write_conf()
    p.kill(signal.SIGHUP)
    harness.wait_for(lambda: "reconfigured" in p.log_text(), 15,
                     what="the reload")
    clients = []
    try:
        # one in the worker, four waiting in the queue
        for _ in range(5):
            clients.append(harness.LineClient(p.port))
            assert clients[-1].readline().startswith(b"* OK")
        # the sixth is over the limit; once it is refused, the acceptor
        # (one thread, in order) has queued or refused the five before it
        with harness.LineClient(p.port) as extra:
            assert extra.closed_by_peer(10)
        assert "queue is full" not in p.log_text(), p.logs()
        assert "5 worker_connections are not enough" in p.log_text()
    finally:
        for c in clients:
            c.close()


def assert_stop_ended_last_session(p):
    """The last session's log says the stop ended it, not its client
    (the stop also shuts the client's socket down, which reads as an end
    of file).  The last session is the test's client: the one before it
    is the harness's probe of the port, which closes by itself.  It may
    have waited in the queue, which the stop drops with one line."""
    mine = harness.last_session_lines(p)
    assert any("server is shutting down" in ln for ln in mine), mine
    assert not any("client closed" in ln for ln in mine), mine


def test_term_fast_stop(postern_config):
    p = simple(postern_config, mail={"timeout": "60s"})
    p.start()
    with harness.LineClient(p.port) as c:
        assert c.readline().startswith(b"* OK")
        p.kill(signal.SIGTERM)
        # the silent session would hold on for its 60 s timeout: exiting
        # within the wait's bound means TERM ended it
        status = p.wait_exit(10)
        assert c.closed_by_peer(5)
    assert status == 0, p.logs()
    assert not os.path.exists(p.pidfile)
    assert_stop_ended_last_session(p)


@pytest.mark.parametrize("stage", ["auth service", "backend", "resolver"])
def test_term_ends_waits_beyond_the_client(postern_config, stage):
    """A fast stop also ends a login waiting on a silent auth service,
    backend or DNS server (each would hold it for its 60 s timeout), not
    only one waiting for its client, and the backend login does not go on
    after it."""
    with imap_util.FakeBackend("silent") as silent, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dns:
        where = "127.0.0.1:%d" % silent.port
        dns.bind(("127.0.0.1", 0))
        if stage == "auth service":
            p = simple(postern_config, mail={"timeout": "60s"},
                       auth="http://%s/auth" % where)
        elif stage == "backend":
            p = simple(postern_config, mail={"timeout": "60s"},
                       auth=[("alice", "{PLAIN}alice-pw", where)])
        else:
            # the client's host name for the auth request: a lookup that
            # the DNS server never answers
            p = simple(postern_config, auth="http://%s/auth" % where,
                       mail={"timeout": "60s", "resolver_timeout": "60s",
                             "resolver": "127.0.0.1:%d"
                                         % dns.getsockname()[1]})
        p.start()
        with harness.LineClient(p.port) as c:
            assert c.readline().startswith(b"* OK")
            c.send("a LOGIN alice alice-pw\r\n")
            if stage == "resolver":
                dns.settimeout(10)
                dns.recvfrom(512)           # the question came
            else:
                harness.wait_for(lambda: silent.accepted > 0, 10,
                                 what="the %s to be asked" % stage)
            p.kill(signal.SIGTERM)
            # exiting within the wait's bound means TERM ended the wait
            status = p.wait_exit(10)
            assert c.closed_by_peer(5)
    assert status == 0, p.logs()
    assert_stop_ended_last_session(p)


def accepted(port, peer_port):
    """Whether the server's end has been accepted: until then it has no
    socket file, and /proc/net/tcp shows its inode as 0."""
    fields = harness.server_end(port, peer_port)
    return fields is not None and fields[9] != "0"


@pytest.mark.parametrize("stage", ["PROXY header", "smtp_greeting_delay"])
def test_term_ends_a_wait_for_the_client(postern_config, stage):
    """A fast stop ends a worker waiting for the rest of a PROXY protocol
    header, or out smtp_greeting_delay, and the log says the stop ended
    the session, not its client."""
    port = harness.free_port()
    if stage == "PROXY header":
        server = {"protocol": "imap",
                  "listen": "127.0.0.1:%d proxy_protocol" % port}
    else:
        server = {"protocol": "smtp", "listen": "127.0.0.1:%d" % port,
                  "smtp_greeting_delay": "50s"}
    p = simple(postern_config, [server], mail={"timeout": "60s"})
    p.start()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        if stage == "PROXY header":
            # the worker takes the bytes of a header that is not complete
            c.sendall(b"PROXY TCP4 192.0.2.1 ")
            peer = c.getsockname()[1]
            harness.wait_for(
                lambda: harness.receive_queue_empty(port, peer), 10,
                what="the worker to read the header's start")
        else:
            harness.wait_sessions(p, 2)
        p.kill(signal.SIGTERM)
        status = p.wait_exit(10)
        assert c.recv(100) == b""
    assert status == 0, p.logs()
    assert_stop_ended_last_session(p)


# --------------------------------------------------------------------------
# clients that have said nothing wait in the acceptor, not in a worker

SILENT_KINDS = ["IMAP", "POP3", "SMTP", "implicit TLS", "PROXY protocol",
                "POP3 APOP", "SMTP greeting delay"]


def silent_server(kind, port, certs):
    """A server on port where a client of this kind must speak next."""
    listen = "127.0.0.1:%d" % port
    if kind == "implicit TLS":
        s = {"protocol": "imap", "listen": listen + " ssl"}
        s.update(certs.server_settings("rsa"))
        return s
    if kind == "PROXY protocol":
        return {"protocol": "imap", "listen": listen + " proxy_protocol",
                "set_real_ip_from": ["127.0.0.1"]}
    if kind == "POP3 APOP":
        # each client its own timestamp in the greeting
        return {"protocol": "pop3", "listen": listen,
                "pop3_auth": ["plain", "apop"]}
    if kind == "SMTP greeting delay":
        # held through the delay, then greeted, then held until it talks
        return {"protocol": "smtp", "listen": listen,
                "smtp_greeting_delay": "200ms"}
    return {"protocol": kind.lower(), "listen": listen}


def silent_client(kind, port):
    """A client that connects, reads the greeting if it is sent one at
    once, and says nothing."""
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    if kind not in ("implicit TLS", "PROXY protocol"):
        f = c.makefile("rb")
        greeting = f.readline()
        f.close()
        assert greeting[:1] in (b"*", b"+", b"2"), greeting
        if kind == "POP3 APOP":
            assert re.match(rb"\+OK POP3 ready <\d+\.\d+@[^>]+>\r\n$",
                            greeting), greeting
    return c


def first_words(kind, c, certs):
    """The silent client c speaks at last and is served: it gets its
    greeting or the answer to its first command."""
    if kind == "implicit TLS":
        t = certs.client_context().wrap_socket(c, server_hostname="localhost")
        assert t.recv(100).startswith(b"* OK")
        return t
    if kind == "PROXY protocol":
        c.sendall(smtp_util.proxy_v1("192.0.2.7", "127.0.0.1", 40007, 143))
        assert c.recv(100).startswith(b"* OK")
        return c
    c.sendall(b"a NOOP\r\n" if kind == "IMAP" else b"NOOP\r\n")
    assert c.recv(100)[:1] in (b"a", b"+", b"2")
    return c


@pytest.mark.parametrize("kind", SILENT_KINDS)
def test_silent_clients_do_not_take_workers(postern_config, certs, kind):
    """Clients that connect and say nothing (the greeting read and no
    command, no TLS hello, no PROXY header) wait for their first bytes
    without a worker: with one worker, a client that talks is served at
    once beside five silent ones, which used to hold that worker for
    `timeout`.  A silent client that speaks at last is served as usual."""
    port = harness.free_port()
    p = simple(postern_config, [{"protocol": "imap"},
                                silent_server(kind, port, certs)],
               top={"worker_threads": 1}, mail={"timeout": "60s"})
    p.start()
    silent = []
    try:
        for _ in range(5):
            silent.append(silent_client(kind, port))
        # all five accepted before the talking client connects
        peers = [c.getsockname()[1] for c in silent]
        harness.wait_for(lambda: all(accepted(port, peer) for peer in peers),
                         10, what="postern to accept them")
        with harness.LineClient(p.port, timeout=10) as c:
            assert c.readline().startswith(b"* OK")
            assert c.cmd("a CAPABILITY").startswith(b"* CAPABILITY")
            assert c.readline().startswith(b"a OK")
        silent[0] = first_words(kind, silent[0], certs)
        # each silent client's connect line is written as it is accepted,
        # as NGINX writes it, though none has spoken
        for c in silent[1:]:
            line = "client 127.0.0.1:%d connected to 127.0.0.1:%d" \
                % (c.getsockname()[1], port)
            assert line in p.log_text(), p.logs()
    finally:
        for c in silent:
            c.close()
    assert "waiting for a worker" not in p.log_text(), p.logs()


@pytest.mark.parametrize("kind", SILENT_KINDS)
def test_silent_client_times_out(postern_config, certs, kind):
    """A client held until it speaks is closed when `timeout` passes and
    logged in the words of the stage it never left, after its connect
    line, as when a worker waited for it."""
    port = harness.free_port()
    p = simple(postern_config, [silent_server(kind, port, certs)],
               mail={"timeout": "1s"})
    p.start()
    with silent_client(kind, port) as c:
        c.settimeout(10)
        assert c.recv(100) == b""
    words = {"implicit TLS": "SSL handshake timed out while SSL handshaking",
             "PROXY protocol": "client timed out (110: Connection timed out) "
                               "while reading PROXY protocol"}.get(
        kind, "client timed out (110: Connection timed out) while in auth "
              "state")
    harness.wait_for(lambda: words in p.log_text(), 10, what=words)
    mine = harness.last_session_lines(p)
    assert words in mine[-1], mine
    assert " connected to " in mine[0], mine
    assert "waiting for a worker" not in p.log_text(), p.logs()


# --------------------------------------------------------------------------
# sessions that go silent in their dialogue leave their worker

# kind: (server settings, a command and the start of its answer's last
# line, a command cut in two and the start of its answer)
PARKED = {
    "IMAP": ({"protocol": "imap"}, b"a CAPABILITY\r\n", b"a OK",
             (b"b NO", b"OP\r\n"), b"b OK"),
    "POP3": ({"protocol": "pop3"}, b"CAPA\r\n", b".",
             (b"NO", b"OP\r\n"), b"+OK"),
    "SMTP": ({"protocol": "smtp"}, b"EHLO client.test\r\n", b"250 ",
             (b"NO", b"OP\r\n"), b"250 "),
    "IMAP implicit TLS": ({"protocol": "imap", "tls": "ssl"},
                          b"a CAPABILITY\r\n", b"a OK",
                          (b"b NO", b"OP\r\n"), b"b OK"),
    "IMAP STARTTLS": ({"protocol": "imap", "tls": "starttls"},
                      b"a CAPABILITY\r\n", b"a OK",
                      (b"b NO", b"OP\r\n"), b"b OK"),
}


class Talker(harness.LineClient):
    """A client of a PARKED server: lines over a plain or TLS socket."""

    def __init__(self, kind, port, certs):
        settings = PARKED[kind][0]
        super().__init__(port, timeout=10)
        if settings.get("tls") == "ssl":
            self.sock = certs.client_context().wrap_socket(
                self.sock, server_hostname="localhost")
        assert self.readline()[:1] in (b"*", b"+", b"2")
        if settings.get("tls") == "starttls":
            self.send(b"s STARTTLS\r\n")
            assert self.readline().startswith(b"s OK")
            self.sock = certs.client_context().wrap_socket(
                self.sock, server_hostname="localhost")


def parked_server(kind, port, certs):
    settings = dict(PARKED[kind][0])
    tls = settings.pop("tls", None)
    settings["listen"] = "127.0.0.1:%d%s" % (port, " ssl" if tls == "ssl"
                                             else "")
    if tls:
        settings.update(certs.server_settings("rsa"))
    if tls == "starttls":
        settings["starttls"] = True
    return settings


def served_beside(port):
    """An IMAP client on port gets its command answered: the one worker is
    free for it."""
    with harness.LineClient(port, timeout=5) as c:
        assert c.readline().startswith(b"* OK")
        assert c.cmd("x NOOP").startswith(b"x OK")


@pytest.mark.parametrize("kind", sorted(PARKED))
def test_silent_sessions_leave_their_worker(postern_config, certs, kind):
    """A client that goes silent between two commands, or in the middle of
    one, while another waits for a worker, leaves its worker to it (its
    session waits in the acceptor) and goes on where it stopped when it
    speaks again: with one worker and `timeout` 60s, the other client is
    served at once, twice; the first then finishes its command, and sends
    another."""
    port = harness.free_port()
    _, first, last, (head, tail), answer = PARKED[kind]
    p = simple(postern_config, [{"protocol": "imap"},
                                parked_server(kind, port, certs)],
               top={"worker_threads": 1}, mail={"timeout": "60s"})
    p.start()
    a = Talker(kind, port, certs)
    try:
        a.send(first)
        assert a.line_starting(last).startswith(last)
        served_beside(p.port)           # a is silent after a command
        a.send(head)
        time.sleep(0.3)                 # the cut reaches postern alone
        served_beside(p.port)           # a is silent in a command
        a.send(tail)
        assert a.line_starting(answer).startswith(answer), p.logs()
        a.send(first)
        assert a.line_starting(last).startswith(last), p.logs()
    finally:
        a.close()
    assert "timed out" not in p.log_text(), p.logs()


def test_waiting_workers_leave_at_once(postern_config):
    """A worker waiting for a silent client leaves it as soon as another
    client needs a worker, not at its next look at the queue (every 100 ms,
    a backstop): with one worker, 60 clients one after the other each get
    their NOOP answered and then fall silent, so each one's command finds
    the worker waiting for the one before.  Looking every 100 ms, the
    worker found each command 100 ms after its reply to the one before: 6 s
    for the 60 (measured on the build before); woken at once, they take a
    few milliseconds each.  Afterwards every one of them is still served."""
    p = simple(postern_config, top={"worker_threads": 1},
               mail={"timeout": "60s"})
    p.start()
    clients = []
    try:
        began = time.monotonic()
        for i in range(60):
            c = harness.LineClient(p.port, timeout=10)
            clients.append(c)
            assert c.readline().startswith(b"* OK")
            assert c.cmd("a%d NOOP" % i).startswith(b"a%d OK" % i), p.logs()
        took = time.monotonic() - began
        for i, c in enumerate(clients):
            assert c.cmd("b%d NOOP" % i).startswith(b"b%d OK" % i), p.logs()
    finally:
        for c in clients:
            c.close()
    assert took < 1.5, (took, p.logs())


def b64(text):
    return base64.b64encode(text.encode()) + b"\r\n"


# kind: (server settings, [(what the client sends, the start of the line
# that ends postern's answer)]): a SASL exchange whose every challenge the
# client leaves unanswered for a while; the password is wrong
SASL_PARKED = {
    "IMAP AUTHENTICATE PLAIN": (
        {"protocol": "imap"},
        [(b"a AUTHENTICATE PLAIN\r\n", b"+ "),
         (b64("\0alice\0wrong"), b"a NO")]),
    "IMAP AUTHENTICATE CRAM-MD5": (
        {"protocol": "imap", "imap_auth": ["plain", "cram-md5"]},
        [(b"a AUTHENTICATE CRAM-MD5\r\n", b"+ "),
         (b64("alice " + "0" * 32), b"a NO")]),
    "POP3 AUTH LOGIN": (
        {"protocol": "pop3"},
        [(b"AUTH LOGIN\r\n", b"+ "), (b64("alice"), b"+ "),
         (b64("wrong"), b"-ERR")]),
    "SMTP AUTH LOGIN": (
        {"protocol": "smtp"},
        [(b"EHLO client.test\r\n", b"250 "), (b"AUTH LOGIN\r\n", b"334 "),
         (b64("alice"), b"334 "), (b64("wrong"), b"535 ")]),
}


@pytest.mark.parametrize("kind", sorted(SASL_PARKED))
def test_sasl_exchange_leaves_the_worker(postern_config, kind):
    """A client that leaves a SASL challenge unanswered while another
    waits for a worker leaves its worker to it, and the exchange goes on
    where it stood when the answer comes (AUTH LOGIN: after each of its two
    challenges): with one worker, the other client is served each time,
    and the login is tried with what the client sent."""
    port = harness.free_port()
    settings, steps = SASL_PARKED[kind]
    server = dict(settings, listen="127.0.0.1:%d" % port)
    p = simple(postern_config, [{"protocol": "imap"}, server],
               top={"worker_threads": 1}, mail={"timeout": "60s"})
    p.start()
    with harness.LineClient(port, timeout=10) as a:
        assert a.readline()[:1] in (b"*", b"+", b"2")
        for data, last in steps:
            a.send(data)
            for _ in range(50):
                line = a.readline()
                if line.startswith(last) or not line:
                    break
            assert line.startswith(last), (line, p.logs())
            if last in (b"+ ", b"334 "):
                served_beside(p.port)   # the challenge is unanswered
    harness.wait_for(lambda: "client login failed" in p.log_text(), 10,
                     what="the refusal in the log")
    assert 'login: "alice"' in p.log_text(), p.logs()
    assert "timed out" not in p.log_text(), p.logs()


class PiecemealTLS:
    """A TLS client over a socket whose every write the test controls
    (ssl.MemoryBIO): the handshake can stop anywhere."""

    def __init__(self, port, certs):
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = certs.client_context().wrap_bio(
            self.inc, self.out, server_hostname="localhost")
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""                  # decrypted, not yet a whole line

    def step(self):
        """Go on with the handshake: True once it is done; what it has to
        send waits in self.out."""
        try:
            self.obj.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    def receive(self):
        data = self.sock.recv(65536)
        assert data, "the server closed the connection"
        self.inc.write(data)

    def readline(self):
        for _ in range(50):
            if b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                return line + b"\n"
            try:
                self.buf += self.obj.read(4096)
            except ssl.SSLWantReadError:
                self.receive()
        pytest.fail("no line: %r" % self.buf)

    def write(self, data):
        self.obj.write(data)
        self.sock.sendall(self.out.read())

    def close(self):
        self.sock.close()


# kind: (server settings, the STARTTLS command and its answer (None: an
# ssl listener), a command after the handshake and its answer's last line)
HANDSHAKES = {
    "IMAP ssl": ({"protocol": "imap", "ssl": True}, None,
                 b"t NOOP\r\n", b"t OK"),
    "IMAP STARTTLS": ({"protocol": "imap", "starttls": True},
                      (b"s STARTTLS\r\n", b"s OK"), b"t NOOP\r\n", b"t OK"),
    "POP3 STLS": ({"protocol": "pop3", "starttls": True},
                  (b"STLS\r\n", b"+OK"), b"NOOP\r\n", b"+OK"),
    "SMTP STARTTLS": ({"protocol": "smtp", "starttls": True},
                      (b"STARTTLS\r\n", b"220 "), b"EHLO client.test\r\n",
                      b"250 "),
}


@pytest.mark.parametrize("kind", sorted(HANDSHAKES))
def test_tls_handshake_leaves_the_worker(postern_config, certs, kind):
    """A client that stops in the middle of its TLS handshake (of an ssl
    listener or after STARTTLS), while another waits for a worker, leaves
    its worker to it and goes on with the handshake when its bytes come:
    with one worker, the other client is served while the first has sent
    part of its hello, and again while it holds back its Finished; the
    first then gets its answers."""
    settings, starttls, command, answer = HANDSHAKES[kind]
    port = harness.free_port()
    server = dict(settings)
    ssl_listener = server.pop("ssl", False)
    server["listen"] = "127.0.0.1:%d%s" % (port, " ssl" if ssl_listener
                                           else "")
    server.update(certs.server_settings("rsa"))
    p = simple(postern_config, [{"protocol": "imap"}, server],
               top={"worker_threads": 1}, mail={"timeout": "60s"})
    p.start()
    a = PiecemealTLS(port, certs)
    try:
        if starttls:
            plain = a.sock.makefile("rb")
            assert plain.readline()[:1] in (b"*", b"+", b"2")
            a.sock.sendall(starttls[0])
            assert plain.readline().startswith(starttls[1])
            plain.close()
        assert not a.step()
        hello = a.out.read()
        a.sock.sendall(hello[:20])
        time.sleep(0.3)                 # the piece reaches the worker alone
        served_beside(p.port)           # a is silent in its hello
        a.sock.sendall(hello[20:])
        a.receive()                     # the server's flight
        for _ in range(10):
            if a.step() or a.out.pending:
                break                   # done, or a's answer to the flight
            a.receive()
        finished = a.out.read()
        served_beside(p.port)           # a holds back its Finished
        a.sock.sendall(finished)
        for _ in range(10):
            if a.step():
                break
            a.receive()
        if not starttls:
            assert a.readline().startswith(b"* OK"), p.logs()
        a.write(command)
        for _ in range(30):
            line = a.readline()
            if line.startswith(answer):
                break
        assert line.startswith(answer), (line, p.logs())
    finally:
        a.close()
    assert "timed out" not in p.log_text(), p.logs()


def test_proxy_header_leaves_the_worker(postern_config):
    """A balancer's connection whose PROXY header stops halfway, while
    another client waits for a worker, leaves its worker to it and reads
    the rest when it comes: with one worker, the other client is served,
    then the first is greeted and answered as the client the header
    names."""
    port = harness.free_port()
    server = {"protocol": "imap",
              "listen": "127.0.0.1:%d proxy_protocol" % port,
              "set_real_ip_from": ["127.0.0.1"]}
    p = simple(postern_config, [{"protocol": "imap"}, server],
               top={"worker_threads": 1}, mail={"timeout": "60s"})
    p.start()
    with harness.LineClient(port, timeout=10) as a:
        a.send(b"PROXY TCP4 192.0.2.7 ")
        time.sleep(0.3)                 # the piece reaches the worker alone
        served_beside(p.port)
        a.send(b"127.0.0.1 4000 143\r\n")
        assert a.readline().startswith(b"* OK"), p.logs()
        assert a.cmd("t NOOP").startswith(b"t OK"), p.logs()
    harness.wait_for(lambda: "client: 192.0.2.7" in p.log_text(), 10,
                     what="the session under the header's address")
    assert "timed out" not in p.log_text(), p.logs()


def parked_client(p):
    """A client of p's IMAP server (one worker) whose session waits in the
    acceptor: it was answered, then another client took the worker."""
    a = harness.LineClient(p.port, timeout=10)
    try:
        assert a.readline().startswith(b"* OK")
        assert a.cmd("a NOOP").startswith(b"a OK")
        served_beside(p.port)           # a left the worker for it
    except BaseException:
        a.close()
        raise
    return a


def test_parked_session_times_out(postern_config):
    """A session waiting in the acceptor is timed out when `timeout`
    passes, with the line a worker wrote for it."""
    p = simple(postern_config, top={"worker_threads": 1},
               mail={"timeout": "2s"})
    p.start()
    with parked_client(p) as a:
        # closed by its 2 s timeout, not at the end of the wait's bound
        assert a.closed_by_peer(10), p.logs()
    words = "client timed out (110: Connection timed out) while in auth state"
    harness.wait_for(lambda: words in p.log_text(), 10, what=words)


def test_auth_wait_needs_no_worker(postern_config):
    """A refused login's Auth-Wait (2 s with auth_file) needs no worker:
    with one worker, another client is served while it runs; the refusal
    still comes after the whole wait, and the client may try again."""
    p = simple(postern_config, top={"worker_threads": 1},
               mail={"timeout": "30s"})
    p.start()
    with harness.LineClient(p.port, timeout=10) as a:
        assert a.readline().startswith(b"* OK")
        for tag in ("a", "b"):
            t0 = time.monotonic()
            a.send("%s LOGIN alice wrong\r\n" % tag)
            harness.wait_for(
                lambda: p.log_text().count("client login failed") >=
                (1 if tag == "a" else 2), 10, what="the refusal")
            served_beside(p.port)
            # the other client was served before this one's answer came
            assert select.select([a.sock], [], [], 0)[0] == [], p.logs()
            assert a.readline().startswith(tag.encode() + b" NO"), p.logs()
            assert time.monotonic() - t0 >= 2.0


@pytest.mark.parametrize("sig", ["TERM", "QUIT"])
def test_parked_session_at_stop(postern_config, sig):
    """A session waiting in the acceptor when postern stops: a fast stop
    closes it at once; a graceful one gives it back to a worker, which
    serves it as the stop allows."""
    p = simple(postern_config, top={"worker_threads": 1},
               mail={"timeout": "30s"})
    p.start()
    with parked_client(p) as a:
        p.kill(getattr(signal, "SIG" + sig))
        if sig == "TERM":
            assert a.closed_by_peer(10), p.logs()
            assert p.wait_exit(10) == 0, p.logs()
        else:
            harness.wait_for(lambda: "SIGQUIT" in p.log_text(), 10,
                             what="the graceful stop")
            assert a.cmd("b NOOP").startswith(b"b OK"), p.logs()
            assert a.cmd("c LOGOUT").startswith(b"* BYE"), p.logs()
            assert p.wait_exit(20) == 0, p.logs()
    assert not ERROR_LEVELS.search(p.log_text()), p.logs()


def test_int_fast_stop(postern_config):
    p = simple(postern_config)
    p.start()
    p.kill(signal.SIGINT)
    assert p.wait_exit(10) == 0, p.logs()
    assert not os.path.exists(p.pidfile)


def test_quit_graceful_stop(postern_config):
    p = simple(postern_config, mail={"timeout": "3s"})
    p.start()
    with harness.LineClient(p.port) as c:
        assert c.readline().startswith(b"* OK")
        p.kill(signal.SIGQUIT)
        # no new connections ...
        harness.wait_for(lambda: refused(p.port) or not p.alive(), 5,
                         what="the listener to close")
        # ... but the session in progress goes on
        if p.alive():
            reply = c.cmd("a1 CAPABILITY")
            assert reply.startswith(b"* CAPABILITY") or \
                reply.startswith(b"a1 OK"), reply
        status = p.wait_exit(15)
    assert status == 0, p.logs()
    assert not os.path.exists(p.pidfile)


def test_quit_shutdown_timeout(postern_config):
    p = simple(postern_config, top={"shutdown_timeout": "1s"},
               mail={"timeout": "60s"})
    p.start()
    with harness.LineClient(p.port) as c:
        assert c.readline().startswith(b"* OK")
        p.kill(signal.SIGQUIT)
        # a graceful stop waits for the session, which would take its 60 s
        # timeout: exiting within the wait's bound means shutdown_timeout
        # ended it
        status = p.wait_exit(15)
        assert c.closed_by_peer(5)
    assert status == 0, p.logs()


def relayed_login(port):
    """A client of port logged in to the backend and relayed; its LOGIN
    reply has been read."""
    c = harness.LineClient(port)
    try:
        assert c.readline().startswith(b"* OK")
        c.send("a LOGIN alice alice-pw\r\n")
        for _ in range(10):
            line = c.readline()
            if not line or line.startswith(b"a "):
                break
        assert line.startswith(b"a OK"), line
    except BaseException:
        c.close()
        raise
    return c


@pytest.mark.parametrize("stage,sig", [("worker", signal.SIGTERM),
                                       ("relay", signal.SIGTERM),
                                       ("relay", signal.SIGINT)])
def test_term_during_graceful_stop(postern_config, stage, sig):
    """A graceful stop waits for sessions in workers and in the relay (an
    IMAP IDLE may last hours); TERM or INT meanwhile makes it a fast stop,
    as in NGINX."""
    with imap_util.FakeBackend("ok") as fb:
        p = simple(postern_config, mail={"timeout": "60s"},
                   auth=[("alice", "{PLAIN}alice-pw",
                          "127.0.0.1:%d" % fb.port)])
        p.start()
        if stage == "relay":
            c = relayed_login(p.port)
        else:
            c = harness.LineClient(p.port)
            assert c.readline().startswith(b"* OK")
        with c:
            p.kill(signal.SIGQUIT)
            harness.wait_for(lambda: "SIGQUIT" in p.log_text(), 10,
                             what="the graceful stop")
            harness.wait_for(lambda: refused(p.port), 10,
                             what="the listener to close")
            # the session goes on ...
            if stage == "relay":
                assert c.cmd("b NOOP") == b"b NOOP\r\n"   # the echo
            else:
                assert c.cmd("b NOOP").startswith(b"b OK")
            assert p.alive()
            # ... until TERM/INT: the silent session would hold on for its
            # 60 s timeout or for ever, so exiting within the wait's bound
            # means the signal ended it
            p.kill(sig)
            status = p.wait_exit(10)
            assert c.closed_by_peer(5)
    assert status == 0, p.logs()
    assert not os.path.exists(p.pidfile)
    assert re.search(r"signal %d \(%s\) received during graceful shutdown"
                     % (sig, sig.name), p.log_text()), p.logs()


def test_usr1_and_hup_during_graceful_stop(postern_config):
    """While a graceful stop waits for a session, USR1 still reopens the
    logs, and HUP is ignored with a log line (no reload)."""
    p = simple(postern_config, mail={"timeout": "60s"})
    p.start()
    with harness.LineClient(p.port) as c:
        assert c.readline().startswith(b"* OK")
        p.kill(signal.SIGQUIT)
        harness.wait_for(lambda: "SIGQUIT" in p.log_text(), 10,
                         what="the graceful stop")
        os.rename(p.error_log, p.error_log + ".1")
        p.kill(signal.SIGUSR1)
        harness.wait_for(lambda: os.path.exists(p.error_log), 10,
                         what="error.log to be reopened")
        new_port = p.add_server({"protocol": "pop3"})
        p.write_conf()
        p.kill(signal.SIGHUP)
        harness.wait_for(lambda: "SIGHUP) received during graceful shutdown, "
                         "ignored" in p.log_text(), 10,
                         what="the HUP to be refused")
        assert refused(new_port)
        assert p.alive()
        c.close()                   # the last session ends: so does postern
        assert p.wait_exit(15) == 0, p.logs()
    assert not os.path.exists(p.pidfile)


def test_usr1_reopens_log(postern_config):
    p = simple(postern_config)
    p.start()
    harness.wait_for(lambda: os.path.exists(p.error_log), 5,
                     what="error.log")
    os.rename(p.error_log, p.error_log + ".1")
    p.kill(signal.SIGUSR1)
    harness.wait_for(lambda: os.path.exists(p.error_log), 10,
                     what="error.log to be reopened")
    assert p.alive()


# --------------------------------------------------------------------------
# -s through the pid file

def test_s_reload(postern_config):
    p = simple(postern_config)
    p.start()
    new_port = p.add_server({"protocol": "imap"})
    p.write_conf()
    r = p.run("-s", "reload")
    assert r.returncode == 0, output(r)
    harness.wait_port(new_port, 15, p.proc)
    assert p.alive()


@pytest.mark.parametrize("how", ["stop", "quit"])
def test_s_stop_quit(postern_config, how):
    p = simple(postern_config)
    p.start()
    r = p.run("-s", how)
    assert r.returncode == 0, output(r)
    assert p.wait_exit(15) == 0, p.logs()
    assert not os.path.exists(p.pidfile)


def test_s_reopen(postern_config):
    p = simple(postern_config)
    p.start()
    harness.wait_for(lambda: os.path.exists(p.error_log), 5,
                     what="error.log")
    os.rename(p.error_log, p.error_log + ".1")
    r = p.run("-s", "reopen")
    assert r.returncode == 0, output(r)
    harness.wait_for(lambda: os.path.exists(p.error_log), 10,
                     what="error.log to be reopened")
    assert p.alive()


def test_s_without_running_instance(postern_config):
    p = simple(postern_config)
    r = p.run("-s", "stop")
    assert r.returncode != 0
    assert p.pidfile in output(r), output(r)


def test_pid_file_naming_another_program_is_stale(postern_config):
    """A pid file that outlived its postern may name a pid since given to
    another program: -s does not signal it, and a start replaces it."""
    p = simple(postern_config)
    with open(p.pidfile, "w") as f:
        f.write("%d\n" % os.getpid())          # alive, and not a postern
    r = p.run("-s", "stop")
    assert r.returncode != 0
    assert "no postern process %d" % os.getpid() in output(r), output(r)
    p.start()
    with open(p.pidfile) as f:
        assert int(f.read()) == p.pid


def test_pid_file_naming_our_own_pid_is_stale(postern_config):
    """A pid file left by an unclean stop may hold the very pid the new
    postern is given (always 1 for a container's first process): it names
    no other postern, and the start goes on."""
    p = simple(postern_config)
    p.stderr_file = open(p.stderr_path, "ab")
    # the shell writes its own pid, then becomes postern under that pid
    p.proc = harness.spawn(
        ["/bin/sh", "-c", 'echo $$ > "$0"; exec "$@"', p.pidfile]
        + p.command("-f"), "postern",
        stdout=p.stderr_file, stderr=subprocess.STDOUT)
    try:
        harness.wait_port(p.port, 15, p.proc)
    except (harness.HarnessError, TimeoutError) as e:
        pytest.fail("%s\n%s" % (e, p.logs()), pytrace=False)
    assert harness.read_pidfile(p.pidfile) == p.pid
    assert "another postern" not in p.stderr_text() + p.log_text()
    assert p.stop() == 0, p.logs()
    assert not os.path.exists(p.pidfile)


def test_pid_file_kept_after_user_switch_is_harmless(postern_config):
    """With `user` set, postern cannot remove its pid file from a directory
    only root may write: it says so, and the next start is not refused."""
    p = simple(postern_config, top={"user": "nobody nogroup"})
    p.start()
    r = p.run("-s", "stop")
    assert r.returncode == 0, output(r)
    assert p.wait_exit(15) == 0, p.logs()
    assert os.path.exists(p.pidfile)            # p.dir: root's, mode 755
    assert re.search(r"\[notice\] .*pid file not removed: unlink\(\) "
                     r".*Permission denied", p.log_text()), p.log_text()
    p.start()
    assert greeting(p.port).startswith(b"* OK")
    p.stop()


# --------------------------------------------------------------------------
# daemon mode

def test_daemon_mode(postern_config):
    p = simple(postern_config, top={"daemon": True})
    out = open(os.path.join(p.dir, "daemon.out"), "wb")
    try:
        r = subprocess.run(p.command(), stdin=subprocess.DEVNULL,
                           stdout=out, stderr=subprocess.STDOUT, timeout=30)
    finally:
        out.close()
    pid = harness.read_pidfile(p.pidfile)
    try:
        assert r.returncode == 0, p.logs()
        assert pid and harness.pid_alive(pid), p.logs()
        harness.wait_port(p.port, 10)
        assert greeting(p.port).startswith(b"* OK")
        os.kill(pid, signal.SIGTERM)
        harness.wait_pid_gone(pid, 15)
        pid = None
        assert not os.path.exists(p.pidfile)
    finally:
        if pid and harness.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            harness.wait_pid_gone(pid, 5)


def test_f_overrides_daemon(postern_config):
    p = simple(postern_config, top={"daemon": True})
    p.start()                        # with -f: stays our child
    assert harness.read_pidfile(p.pidfile) == p.pid
    assert p.stop() == 0
