"""The process around the sessions: error_log targets and NGINX's line
format, dropping privileges to `user`, the open-file limit and its warning,
the threads' scheduling policy, and every kind of listening address (IPv6,
unix sockets, wildcards and the addresses a wildcard's socket serves).

None of this needs a backend: the auth_file sends every user to a port
nobody listens on, and no test logs in.
"""

import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess

import pytest

import harness

# "2026/11/20 12:00:00 [info] PID#TID: *CONN message"
LINE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] (\d+)#(\d+): "
                  r"(\*\d+ )?(.*)$")


def nowhere_auth():
    return [("alice", "{PLAIN}alice-pw",
             "127.0.0.1:%d" % harness.free_port())]


def greeting_of(sock):
    sock.settimeout(10)
    data = b""
    while not data.endswith(b"\n"):
        d = sock.recv(200)
        if not d:
            break
        data += d
    return data


def test_log_line_format(postern):
    p = postern([{"protocol": "imap"}], auth=nowhere_auth(), log_level="info")
    with socket.create_connection(("127.0.0.1", p.port)) as c:
        assert greeting_of(c).startswith(b"* OK")

    def connected():
        for line in p.log_text().splitlines():
            m = LINE.match(line)
            assert m, "not in NGINX's format: %r" % line
            if m.group(4) and re.match(r"client 127\.0\.0\.1:\d+ connected",
                                       m.group(5)):
                return m
        return None
    m = harness.wait_for(connected, 10, what="the connected line")
    assert m.group(1) == "info"
    assert int(m.group(2)) == p.pid
    # at info, nothing of debug level is written
    assert "[debug]" not in p.log_text()


def test_error_log_to_syslog_and_several_targets(postern):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(10)
    try:
        port = udp.getsockname()[1]
        p = postern([{"protocol": "imap"}], auth=nowhere_auth(), top={
            "error_log": [
                "syslog:server=127.0.0.1:%d,facility=mail,tag=ptest" % port
                + " info"],
        })
        with socket.create_connection(("127.0.0.1", p.port)) as c:
            assert greeting_of(c).startswith(b"* OK")
        seen = []
        while True:
            msg = udp.recv(4096).decode("utf-8", "replace")
            seen.append(msg)
            if "connected" in msg:
                break
        # facility mail (2) * 8 + severity info (6) = 22
        assert msg.startswith("<22>"), msg
        assert " ptest: " in msg, msg
        assert "[info]" in msg and re.search(r"client 127\.0\.0\.1:\d+ "
                                             r"connected", msg), msg
    finally:
        udp.close()


def test_server_error_log_overrides_mail(postern):
    p = postern([{"protocol": "imap"}], auth=nowhere_auth(), log_level="info")
    own = os.path.join(p.dir, "imap.log")
    p.stop()
    p.servers[0]["error_log"] = own + " info"
    p.write_conf()
    p.start()
    with socket.create_connection(("127.0.0.1", p.port)) as c:
        assert greeting_of(c).startswith(b"* OK")
    harness.wait_for(lambda: os.path.exists(own) and
                     "connected" in open(own).read(), 10,
                     what="the server's own log")


def wait_started(p):
    """Wait for postern's "started" notice: its ports accept as soon as
    they listen, before it has given the logs to `user` and switched to
    it, which a busy machine can delay past the harness's port check."""
    harness.wait_for(lambda: " started: " in p.log_text(), 15,
                     what="postern to finish starting")


def test_user_drops_privileges(postern):
    nobody = pwd.getpwnam("nobody")
    p = postern([{"protocol": "imap"}], auth=nowhere_auth(),
                top={"user": "nobody nogroup"})
    wait_started(p)
    with open("/proc/%d/status" % p.pid) as f:
        status = f.read()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
    groups = re.search(r"^Groups:\s*(.*)$", status, re.M).group(1).split()
    assert uids == [str(nobody.pw_uid)] * 4, status
    assert gids[0] != "0" and len(set(gids)) == 1, status
    assert groups == [gids[0]], status
    # still serving after the switch
    with socket.create_connection(("127.0.0.1", p.port)) as c:
        assert greeting_of(c).startswith(b"* OK")


# a group that nobody belongs to, in nss_wrapper's group file only
CERT_GID = 54321


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_user_keeps_supplementary_groups(postern_config):
    """The switch to `user` keeps that user's supplementary groups, as
    NGINX's initgroups() does: a key readable through a group such as
    ssl-cert stays readable for a reload.  The user and group databases
    are files served by nss_wrapper (libnss-wrapper)."""
    assert os.path.exists(harness.NSS_WRAPPER), \
        "tests/setup-debian.sh installs it"
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrnam("nogroup")
    p = postern_config([{"protocol": "imap"}], auth=nowhere_auth(),
                       top={"user": "nobody nogroup"})
    passwd = os.path.join(p.dir, "passwd")
    group = os.path.join(p.dir, "group")
    with open(passwd, "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n"
                "nobody:x:%d:%d:nobody:/nonexistent:/usr/sbin/nologin\n"
                % (nobody.pw_uid, nobody.pw_gid))
    with open(group, "w") as f:
        f.write("root:x:0:\nnogroup:x:%d:\npostern-cert:x:%d:nobody\n"
                % (nogroup.gr_gid, CERT_GID))
    p.env = harness.nss_wrapper_env(NSS_WRAPPER_PASSWD=passwd,
                                    NSS_WRAPPER_GROUP=group)
    p.start()
    wait_started(p)
    with open("/proc/%d/status" % p.pid) as f:
        status = f.read()
    gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
    groups = re.search(r"^Groups:\s*(.*)$", status, re.M).group(1).split()
    assert gids == [str(nogroup.gr_gid)] * 4, status
    assert sorted(int(g) for g in groups) == sorted([nogroup.gr_gid,
                                                     CERT_GID]), status
    with socket.create_connection(("127.0.0.1", p.port)) as c:
        assert greeting_of(c).startswith(b"* OK")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_reload_and_reopen_after_user_switch(postern_config):
    """With `user` set, the log files postern opened as root become that
    user's, so a reload and USR1, which open them again after the switch,
    still can: in place, even in root's directory, and anew after rotation
    in a directory the user may write."""
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrnam("nogroup")
    p = postern_config([{"protocol": "imap"}], auth=nowhere_auth(),
                       top={"user": "nobody nogroup"})
    logdir = os.path.join(p.dir, "log")
    os.mkdir(logdir)
    os.chown(logdir, nobody.pw_uid, nogroup.gr_gid)
    p.error_log = os.path.join(logdir, "error.log")
    own = os.path.join(p.dir, "imap.log")          # p.dir: root's, 0755
    p.top["error_log"] = p.error_log + " info"
    p.servers[0]["error_log"] = own + " info"
    p.write_conf()
    # a reload reads the user file as nobody: through its group, here
    os.chown(p.auth_file, 0, nogroup.gr_gid)
    os.chmod(p.auth_file, 0o640)
    p.start()
    wait_started(p)
    for path in (p.error_log, own):
        st = os.stat(path)
        # the owner changes; the group root made them with stays (NGINX)
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, 0), path
    # a reload opens both logs again, as nobody
    p.kill(signal.SIGHUP)
    harness.wait_for(lambda: "reconfigured" in p.log_text(), 15,
                     what="the reload")
    # rotation: error.log is made anew in nobody's directory, imap.log
    # (not rotated) is reopened in place in root's
    os.rename(p.error_log, p.error_log + ".1")
    p.kill(signal.SIGUSR1)
    harness.wait_for(lambda: os.path.exists(p.error_log), 10,
                     what="error.log to be reopened")
    # the main thread takes signals in order: once this reload is logged,
    # the reopen before it has ended
    p.kill(signal.SIGHUP)
    harness.wait_for(lambda: "reconfigured" in p.log_text(), 15,
                     what="the second reload")
    with socket.create_connection(("127.0.0.1", p.port)) as c:
        assert greeting_of(c).startswith(b"* OK")
    harness.wait_for(lambda: "connected" in harness.read_text(own), 10,
                     what="the server's log after the reopen")
    text = harness.read_text(p.error_log + ".1") + p.log_text()
    assert "[alert]" not in text and "reload failed" not in text, text
    assert text.count("reconfigured") == 2, text


def test_worker_rlimit_nofile(postern):
    p = postern([{"protocol": "imap"}], auth=nowhere_auth(),
                top={"worker_rlimit_nofile": 4000})
    with open("/proc/%d/limits" % p.pid) as f:
        limits = f.read()
    assert re.search(r"^Max open files\s+4000\s+4000", limits, re.M), limits


def test_warning_when_connections_exceed_open_files(postern):
    p = postern([{"protocol": "imap"}], auth=nowhere_auth(),
                top={"worker_rlimit_nofile": 1000,
                     "worker_connections": 5000}, log_level="info")
    text = harness.wait_for(lambda: "worker_rlimit_nofile" in p.log_text()
                            and p.log_text(), 10, what="the warning")
    assert re.search(r"\[warn\] .*5000 worker_connections.*"
                     r"raise worker_rlimit_nofile", text), text


OWN_THREAD = re.compile(r"^(postern|acceptor|worker \d+|relay \d+)$")


def thread_policies(pid, count=7):
    """The scheduling policy of each of postern's own threads (a
    sanitizer's are left out), once all count of them have started
    (main, acceptor, 4 workers, 1 relay: harness's defaults).  The port
    accepts before the threads exist."""
    def policies():
        found = []
        for tid in os.listdir("/proc/%d/task" % pid):
            comm = harness.read_text("/proc/%d/task/%s/comm"
                                     % (pid, tid)).strip()
            if OWN_THREAD.match(comm):
                found.append(os.sched_getscheduler(int(tid)))
        return found if len(found) >= count else None
    return harness.wait_for(policies, 10, what="postern's %d threads" % count)


def test_threads_run_under_sched_batch(postern):
    p = postern([{"protocol": "imap"}], auth=nowhere_auth())
    policies = thread_policies(p.pid)
    assert set(policies) == {os.SCHED_BATCH}, policies


def test_administrators_scheduling_policy_kept(postern_config):
    p = postern_config([{"protocol": "imap"}], auth=nowhere_auth())
    p.preexec = lambda: os.sched_setscheduler(0, os.SCHED_IDLE,
                                              os.sched_param(0))
    p.start()
    policies = thread_policies(p.pid)
    assert set(policies) == {os.SCHED_IDLE}, policies


def test_listen_ipv6_and_unix(postern_config):
    sock_path = None
    p = postern_config([{"protocol": "imap"}], auth=nowhere_auth())
    sock_path = os.path.join(p.dir, "imap.sock")
    v6port = harness.free_port()
    p.servers = [{"protocol": "imap", "listen": "[::1]:%d" % v6port},
                 {"protocol": "pop3", "listen": "unix:" + sock_path}]
    p.ports = []
    p.write_conf()
    p.start()
    harness.wait_for(lambda: os.path.exists(sock_path), 10,
                     what="the unix socket")
    with socket.create_connection(("::1", v6port), timeout=10) as c:
        assert greeting_of(c).startswith(b"* OK")
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        u.connect(sock_path)
        assert greeting_of(u).startswith(b"+OK")
    finally:
        u.close()
    p.stop()
    # the socket file goes with the listener
    assert not os.path.exists(sock_path)


def test_listen_host_name_binds_every_address(postern_config):
    """A listen host name with several addresses binds each of them, as
    NGINX does; -T prints the setting once, as written.  The name comes
    from a hosts file through nss_wrapper (libnss-wrapper)."""
    assert os.path.exists(harness.NSS_WRAPPER), \
        "tests/setup-debian.sh installs it"
    p = postern_config([{"protocol": "imap"}], auth=nowhere_auth())
    hosts = os.path.join(p.dir, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.2 multi.postern.test\n"
                "127.0.0.3 multi.postern.test\n"
                "::1 multi.postern.test\n")
    port = harness.free_port()
    p.servers = [{"protocol": "imap",
                  "listen": "multi.postern.test:%d" % port}]
    p.ports = [None]
    p.write_conf()
    env = harness.nss_wrapper_env(hosts)
    p.env = env
    r = subprocess.run(p.command("-T"), env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("multi.postern.test:%d" % port) == 1, r.stdout
    p.start()
    for addr in ("127.0.0.2", "127.0.0.3", "::1"):
        harness.wait_port(port, 10, p.proc, host=addr)
        with socket.create_connection((addr, port), timeout=10) as c:
            assert greeting_of(c).startswith(b"* OK"), addr
    # and only those
    with socket.socket() as s:
        s.settimeout(5)
        assert s.connect_ex(("127.0.0.1", port)) != 0


# -- wildcard listeners, in a network namespace of their own ---------------
#
# A wildcard (0.0.0.0, [::]) is bound on every interface; these tests run
# postern under `unshare -n`, where only a loopback interface exists, and
# connect from inside that namespace with `nsenter`.

NS_CLIENT = r"""
import json, socket, ssl, sys
out = []
for host, port, tls in json.loads(sys.argv[1]):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(fam) as s:
            s.settimeout(10)
            s.connect((host, port))
            if tls:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = ctx.wrap_socket(s)
            data = b""
            while not data.endswith(b"\n"):
                d = s.recv(200)
                if not d:
                    break
                data += d
            out.append(data.decode("ascii", "replace"))
    except OSError as e:
        out.append("error: %s" % e)
print(json.dumps(out))
"""


def netns_or_skip():
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed" % tool)
    r = subprocess.run(["unshare", "-n", "true"], capture_output=True,
                       timeout=30)
    if r.returncode != 0:
        pytest.skip("unshare -n is not permitted here: %s"
                    % r.stderr.decode(errors="replace").strip())


def in_netns(p):
    """Make p start postern in a new network namespace with only lo up."""
    conf = p.conf
    p.command = lambda *args: (
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
         harness.POSTERN_BIN, "-c", conf] + list(args))
    p.ports = []                # not reachable from here: ns_greetings
    with open(os.path.join(p.dir, "nsclient.py"), "w") as f:
        f.write(NS_CLIENT)


def ns_greetings(p, targets):
    """The first line each (host, port, tls) answers with, connecting from
    inside p's namespace ("error: ..." when it cannot connect)."""
    r = subprocess.run(["nsenter", "-t", str(p.pid), "-n", harness.PYTHON,
                        os.path.join(p.dir, "nsclient.py"),
                        json.dumps(targets)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def ns_wait_serving(p, host, port):
    def up():
        if not p.alive():
            raise harness.HarnessError("postern exited\n" + p.logs())
        return not ns_greetings(p, [(host, port, False)])[0].startswith(
            "error")
    harness.wait_for(up, 15, what="postern on %s:%d in its namespace"
                     % (host, port))


def test_listen_ipv4_and_ipv6_wildcards_of_one_port(postern_config):
    """"143" and "[::]:143" start together: IPv6 sockets are ipv6only=on
    unless the listen says otherwise, as in NGINX."""
    netns_or_skip()
    port = harness.free_port()
    p = postern_config([{"protocol": "imap"}], auth=nowhere_auth())
    p.servers = [{"protocol": "imap",
                  "listen": ["%d" % port, "[::]:%d" % port]}]
    p.write_conf()
    in_netns(p)
    p.start(wait=False)
    ns_wait_serving(p, "127.0.0.1", port)
    got = ns_greetings(p, [("127.0.0.1", port, False), ("::1", port, False)])
    assert all(g.startswith("* OK") for g in got), got

    # a bound socket keeps its IPV6_V6ONLY: turning it is no reload (the
    # dual-stack socket cannot be bound while the old ones listen), so the
    # reload fails, says a restart is needed, and both families still work
    p.servers[0]["listen"] = "[::]:%d ipv6only=off" % port
    p.write_conf()
    p.kill(signal.SIGHUP)
    harness.wait_for(lambda: "reload failed" in p.log_text(), 15,
                     what="the refused reload")
    assert "needs a restart" in p.log_text(), p.log_text()
    got = ns_greetings(p, [("127.0.0.1", port, False), ("::1", port, False)])
    assert all(g.startswith("* OK") for g in got), got


def make_cert(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout",
                    os.path.join(d, "key.pem"), "-out",
                    os.path.join(d, "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    return os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")


def test_listen_address_served_by_the_wildcard_socket(postern_config):
    """Without bind, an address on a port with a wildcard listener is
    served by the wildcard's socket: the server and its listen options
    (here ssl) follow the address the client reached; across reloads too.
    With bind it is refused at load time, since Linux cannot listen on
    both."""
    netns_or_skip()
    port = harness.free_port()
    p = postern_config([{"protocol": "imap"}], auth=nowhere_auth(),
                       log_level="info")
    cert, key = make_cert(p.dir)
    wild = {"protocol": "imap", "listen": ["%d" % port, "[::]:%d" % port]}
    tls = {"protocol": "imap", "listen": "127.0.0.3:%d ssl" % port,
           "ssl_certificate": cert, "ssl_certificate_key": key}
    p.servers = [wild, {"protocol": "pop3",
                        "listen": ["127.0.0.2:%d" % port,
                                   "[::1]:%d" % port]}, tls]
    p.write_conf()
    in_netns(p)
    p.start(wait=False)
    ns_wait_serving(p, "127.0.0.1", port)
    got = ns_greetings(p, [("127.0.0.1", port, False),
                           ("127.0.0.2", port, False),
                           ("::1", port, False),
                           ("127.0.0.3", port, True)])
    assert got[0].startswith("* OK"), got       # the wildcard's server
    assert got[1].startswith("+OK"), got        # 127.0.0.2's
    assert got[2].startswith("+OK"), got        # [::1]'s
    assert got[3].startswith("* OK"), got       # 127.0.0.3 ssl: over TLS
    # the two wildcards' sockets serve all five addresses
    assert "started: 2 listening sockets," in p.log_text(), p.log_text()

    # a reload moves the POP3 address; the wildcard socket is kept
    p.servers[1]["listen"] = "127.0.0.4:%d" % port
    p.write_conf()
    p.kill(signal.SIGHUP)
    harness.wait_for(lambda: "reconfigured from" in p.log_text(), 15,
                     what="the reload")
    got = ns_greetings(p, [("127.0.0.2", port, False),
                           ("127.0.0.4", port, False),
                           ("::1", port, False),
                           ("127.0.0.3", port, True)])
    assert got[0].startswith("* OK"), got
    assert got[1].startswith("+OK"), got
    assert got[2].startswith("* OK"), got
    assert got[3].startswith("* OK"), got

    # bind asks for a socket of its own beside the wildcard: refused by -t
    # and by a reload, which keeps the running configuration
    p.servers[1]["listen"] = "127.0.0.4:%d bind" % port
    p.write_conf()
    r = p.run("-t")
    assert r.returncode == 1, r.stderr
    assert re.search(r"postern\.conf:\d+: listen: 127\.0\.0\.4:%d needs a "
                     r"socket of its own" % port, r.stderr), r.stderr
    p.kill(signal.SIGHUP)
    harness.wait_for(lambda: "reload failed" in p.log_text(), 15,
                     what="the refused reload")
    got = ns_greetings(p, [("127.0.0.4", port, False)])
    assert got[0].startswith("+OK"), got

    # dropping the wildcard would bind 127.0.0.4 while the wildcard still
    # listens: the reload fails and says a restart is needed
    p.servers = [p.servers[1]]
    p.servers[0]["listen"] = "127.0.0.4:%d" % port
    p.write_conf()
    p.kill(signal.SIGHUP)
    harness.wait_for(lambda: "needs a restart" in p.log_text(), 15,
                     what="the second refused reload")
    assert re.search(r"reload failed, old configuration kept: bind\(\) to "
                     r"127\.0\.0\.4:%d failed \(Address already in use\); "
                     r"0\.0\.0\.0:%d of the running configuration"
                     % (port, port), p.log_text()), p.log_text()
    got = ns_greetings(p, [("127.0.0.1", port, False)])
    assert got[0].startswith("* OK"), got


def test_duplicate_listen_refused_by_test(postern_config):
    """The same address and port in two servers: -t reports it with the
    file and line, as start-up would."""
    port = harness.free_port()
    p = postern_config([{"protocol": "imap",
                         "listen": "127.0.0.1:%d" % port},
                        {"protocol": "pop3",
                         "listen": "127.0.0.1:%d" % port}],
                       auth=nowhere_auth())
    r = p.run("-t")
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"postern\.conf:\d+: listen: duplicate address "
                     r"127\.0\.0\.1:%d \(also at .*postern\.conf:\d+\)"
                     % port, r.stderr), r.stderr
