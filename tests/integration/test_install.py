"""
test_install.py - `make install` as an administrator runs it, into a
DESTDIR: every file in its place, and the systemd unit's commands, run as
systemd runs them (without systemd itself, which a test cannot drive),
start, reload and stop the installed postern.
"""
import os
import shlex
import signal
import subprocess

import pytest

import harness

BUILDDIR = os.environ.get("POSTERN_BUILDDIR", "")


def make(target, dest):
    """make TARGET DESTDIR=dest in the build directory, in an environment
    without the jobserver and flags of the make that may be running this
    test (make check)."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(k, None)
    r = subprocess.run(["make", "-s", "-C", BUILDDIR, target,
                        "DESTDIR=" + dest], capture_output=True, text=True,
                       timeout=600, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr


def find(root, name, parent=None):
    """The paths under root of the files called name (in a directory
    called parent, if given), relative to root with a leading /."""
    found = []
    for d, _, files in os.walk(root):
        if name in files and (parent is None or os.path.basename(d) == parent):
            found.append("/" + os.path.relpath(os.path.join(d, name), root))
    return found


def read_unit(path):
    """A systemd unit file as {section: {key: value}} (no key repeats in
    ours; comments and blank lines skipped)."""
    unit, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = unit.setdefault(line.strip("[]"), {})
                continue
            key, _, value = line.partition("=")
            assert key not in section, "%s: %s twice" % (path, key)
            section[key] = value
    return unit


@pytest.fixture(scope="module")
def installed():
    """make install DESTDIR=...: (the DESTDIR, the unit's path in it)."""
    if not os.path.exists(os.path.join(BUILDDIR, "Makefile")):
        pytest.skip("no configured build directory in POSTERN_BUILDDIR")
    dest = harness.make_tmpdir("install")
    try:
        make("install", dest)
        units = find(dest, "postern.service")
        if not units:
            pytest.skip("configured --with-systemdsystemunitdir=no")
        assert len(units) == 1, units
        yield dest, units[0]
    finally:
        harness.remove_tmpdir(dest)


def test_files_in_place(installed):
    """The program, both man pages, the example configuration and the
    unit, which names the installed program and configuration."""
    dest, unit_path = installed
    assert unit_path.endswith("/lib/systemd/system/postern.service")
    assert len(find(dest, "postern", "sbin")) == 1
    assert len(find(dest, "postern.8", "man8")) == 1
    assert len(find(dest, "postern.conf.5", "man5")) == 1
    conf = find(dest, "postern.conf", "postern")
    assert len(conf) == 1
    assert len(find(dest, "postern", "logrotate.d")) == 1
    unit = read_unit(dest + unit_path)
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[0] == find(dest, "postern", "sbin")[0]
    assert argv[argv.index("-c") + 1] == conf[0]
    # no @...@ left for configure or make to fill in
    with open(dest + unit_path) as f:
        assert "@" not in f.read()


def test_unit_commands(installed, postern_config):
    """ExecStartPre checks the file, ExecStart runs postern in the
    foreground (Type=exec: the started process is the service),
    ExecReload reloads it, and systemd's stop signal (SIGTERM, the unit
    sets no other) stops it with status 0.  The unit's configuration path
    is swapped for a test file; everything else runs as written."""
    dest, unit_path = installed
    unit = read_unit(dest + unit_path)
    service = unit["Service"]
    assert service["Type"] == "exec"
    assert "KillSignal" not in service
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    # daemon = true, as in the example configuration: -f must keep the
    # process systemd started in the foreground all the same
    p = postern_config([{"protocol": "imap"}], top={"daemon": True},
                       mail={"auth_http": "http://127.0.0.1:9/auth"})

    def command(key, **subst):
        argv = shlex.split(service[key])
        argv[0] = dest + argv[0] if argv[0].endswith("/postern") else argv[0]
        if "-c" in argv:
            argv[argv.index("-c") + 1] = p.conf
        return [subst.get(a, a) for a in argv]

    check = subprocess.run(command("ExecStartPre"), capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "-t" in command("ExecStartPre")

    argv = command("ExecStart")
    assert "-f" in argv
    log = open(p.stderr_path, "ab")
    proc = harness.spawn(argv, "postern (unit)", stdout=log,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        harness.wait_port(p.port, 15, proc)
        with harness.LineClient(p.port) as c:
            assert c.readline().startswith(b"* OK")
        harness.wait_for(lambda: " started: " in p.log_text(), 10,
                         what="the started notice")
        # the process systemd started is postern itself, not a parent
        # that exits: $MAINPID is its pid
        assert harness.read_pidfile(p.pidfile) == proc.pid
        reload = subprocess.run(command("ExecReload",
                                        **{"$MAINPID": str(proc.pid)}),
                                capture_output=True, text=True, timeout=30)
        assert reload.returncode == 0, reload.stderr
        harness.wait_for(lambda: "reconfigured from" in p.log_text(), 10,
                         what="the reload's log line")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, p.logs()
        assert not os.path.exists(p.pidfile)
    finally:
        harness.stop_process(proc)
        log.close()


@pytest.mark.skipif(harness.missing("systemd-analyze"),
                    reason="systemd-analyze is not installed")
def test_unit_verifies(installed):
    """systemd's own check of the unit finds nothing wrong: a copy whose
    program path points into the DESTDIR (systemd-analyze checks that it
    is there), without looking up its man pages, which are not installed
    on this system.  systemd-analyze warns of a bad line on stderr, naming
    the file, and exits 0 all the same."""
    dest, unit_path = installed
    program = find(dest, "postern", "sbin")[0]
    d = harness.make_tmpdir("unit")
    try:
        copy = os.path.join(d, "postern.service")
        with open(dest + unit_path) as f, open(copy, "w") as out:
            out.write(f.read().replace(program + " ", dest + program + " "))
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", copy],
                           capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    finally:
        harness.remove_tmpdir(d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "postern.service" not in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.skipif(harness.missing("logrotate"),
                    reason="logrotate is not installed")
def test_logrotate(installed, postern_config):
    """The installed logrotate file rotates a running postern's logs and
    has it write to the new files (its postrotate: postern -s reopen).
    Its log directory, owner and configuration path are swapped for the
    test's; the rest runs as installed."""
    dest, _ = installed
    with open(dest + find(dest, "postern", "logrotate.d")[0]) as f:
        text = f.read()
    p = postern_config([{"protocol": "imap"}],
                       mail={"auth_http": "http://127.0.0.1:9/auth"})
    logs = os.path.join(p.dir, "logs")
    os.mkdir(logs, 0o755)
    p.error_log = os.path.join(logs, "error.log")
    p.top["error_log"] = p.error_log + " info"
    p.write_conf()
    program = find(dest, "postern", "sbin")[0]
    conf = find(dest, "postern.conf", "postern")[0]
    head, _, rest = text.partition(" {")
    assert head.splitlines()[-1].endswith("/log/postern/*.log"), head
    assert "create 0640 postern adm" in rest
    assert "-s reopen -c %s " % conf in rest
    rest = rest.replace("create 0640 postern adm", "create 0640 %d %d"
                        % (os.getuid(), os.getgid()))
    rest = rest.replace(program + " ", dest + program + " ")
    rest = rest.replace("-c %s " % conf, "-c %s " % p.conf)
    rotate_conf = os.path.join(p.dir, "logrotate.conf")
    with open(rotate_conf, "w") as f:
        f.write(os.path.join(logs, "*.log") + " {" + rest)
    p.start()
    harness.wait_for(lambda: " started: " in p.log_text(), 10,
                     what="the started notice")
    r = subprocess.run(["logrotate", "-f", "-s",
                        os.path.join(p.dir, "logrotate.state"), rotate_conf],
                       capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    # the old file, renamed, ends with the signal that reopened the logs
    # (postrotate ran postern -s reopen); what follows goes to the new one
    harness.wait_for(lambda: "reopening logs"
                     in harness.read_text(p.error_log + ".1"), 10,
                     what="the reopen at the end of the old file")
    assert " started: " in harness.read_text(p.error_log + ".1")
    with harness.LineClient(p.port) as c:
        assert c.readline().startswith(b"* OK")
        port = c.sock.getsockname()[1]
    harness.wait_for(lambda: "client 127.0.0.1:%d connected" % port
                     in p.log_text(), 10, what="the session's connect line")
    assert oct(os.stat(p.error_log).st_mode & 0o777) == "0o640"
    assert p.alive()


def test_uninstall_keeps_edited_files():
    """make uninstall removes what make install put, except a
    configuration the administrator has changed; a second make install
    leaves that file as it is."""
    if not os.path.exists(os.path.join(BUILDDIR, "Makefile")):
        pytest.skip("no configured build directory in POSTERN_BUILDDIR")
    dest = harness.make_tmpdir("uninstall")
    try:
        make("install", dest)
        conf = dest + find(dest, "postern.conf", "postern")[0]
        with open(conf, "a") as f:
            f.write("# edited by the administrator\n")
        make("install", dest)
        with open(conf) as f:
            assert f.read().endswith("# edited by the administrator\n")
        make("uninstall", dest)
        left = [os.path.relpath(os.path.join(d, n), dest)
                for d, _, files in os.walk(dest) for n in files]
        assert left == [os.path.relpath(conf, dest)], left
    finally:
        harness.remove_tmpdir(dest)
