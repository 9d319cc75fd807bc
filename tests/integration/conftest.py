"""Fixtures for postern's integration tests (see harness.py).

  dovecot          module-scoped private Dovecot (IMAP, POP3, LMTP)
  postfix          module-scoped private Postfix delivering to `dovecot`
  authsvc          module-scoped tests/integration/authsvc.py whose users
                   point at `dovecot`
  postern          factory: postern(servers=[...], mail={...}, top={...},
                   auth=...) writes a postern.conf, starts postern -f and
                   waits for its ports; every instance is stopped at the
                   end of the test
  postern_config   factory like `postern` that only writes the files
                   (for -t, -s, daemon tests); .start() is up to the test
  auth_file_for    entries for postern's auth_file that send the Dovecot
                   test users to `dovecot`
  fake_smtp, auth_stub, dns
                   factories of smtp_util's FakeSMTP, AuthStub and DNSStub,
                   each stopped at the end of the test
  certs            module-scoped tls_util.Certs: a test CA, server and
                   client certificates

When a test fails, the tails of the logs of every running fixture are
added to its report.
"""

import os
import signal

import pytest

import harness
import smtp_util
import tls_util


def _sigterm(signum, frame):
    # the run's time limit (run-pytest) sends TERM: unwind so that fixtures
    # stop their servers
    raise KeyboardInterrupt("SIGTERM")


signal.signal(signal.SIGTERM, _sigterm)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and harness.LOGS:
        rep.sections.append(("logs of running servers",
                             harness.logs_report()))


@pytest.fixture(scope="session")
def postern_bin():
    if not os.access(harness.POSTERN_BIN, os.X_OK):
        pytest.fail("postern binary not found at %s (set POSTERN_BIN)"
                    % harness.POSTERN_BIN, pytrace=False)
    return harness.POSTERN_BIN


@pytest.fixture(scope="module")
def dovecot():
    harness.backends_missing(harness.DOVECOT)
    dc = harness.Dovecot()
    try:
        dc.start()
    except harness.HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    yield dc
    dc.stop()


@pytest.fixture(scope="module")
def postfix(dovecot):
    harness.backends_missing(harness.POSTFIX, "postconf")
    pf = harness.Postfix(dovecot)
    try:
        pf.start()
    except harness.HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    yield pf
    pf.stop()


@pytest.fixture(scope="module")
def authsvc(dovecot):
    if not os.path.exists(harness.AUTHSVC):
        pytest.skip("tests/integration/authsvc.py is not there yet")
    svc = harness.AuthSvc(harness.authsvc_users(dovecot))
    try:
        svc.start()
    except (harness.HarnessError, TimeoutError) as e:
        pytest.fail(str(e), pytrace=False)
    yield svc
    svc.stop()


@pytest.fixture
def auth_file_for(dovecot):
    """auth_file_for(protocol) -> entries sending the Dovecot users to the
    Dovecot port of that protocol ({PLAIN} hashes)."""
    def entries(protocol="imap", crypt=False):
        port = {"imap": dovecot.imap_port, "pop3": dovecot.pop3_port}[protocol]
        out = []
        for name, pw in dovecot.users.items():
            h = harness.crypt_hash(pw) if crypt else "{PLAIN}" + pw
            out.append((name, h, "127.0.0.1:%d" % port))
        return out
    return entries


@pytest.fixture(scope="module")
def certs():
    missing = harness.missing("openssl")
    if missing:
        pytest.skip("openssl is not installed")
    d = harness.make_tmpdir("certs")
    try:
        c = tls_util.Certs(d).make()
    except harness.HarnessError as e:
        harness.remove_tmpdir(d)
        pytest.fail(str(e), pytrace=False)
    yield c
    harness.remove_tmpdir(d)


@pytest.fixture
def postern_config(postern_bin):
    """Factory: harness.Postern(...) objects, cleaned up after the test."""
    made = []

    def make(servers, **kw):
        p = harness.Postern(servers, **kw)
        made.append(p)
        return p
    yield make
    reports = []
    for p in made:
        try:
            p.cleanup()
        except Exception as e:          # keep cleaning up the others
            reports.append("cleanup of %s failed: %r" % (p.dir, e))
            continue
        if p.sanitizer_report:
            reports.append(p.sanitizer_report)
    if reports:
        pytest.fail("after the test:\n" + "\n".join(reports), pytrace=False)


@pytest.fixture
def postern(postern_config):
    """Factory: a started postern (foreground, -f)."""
    def start(servers, **kw):
        p = postern_config(servers, **kw)
        try:
            p.start()
        except harness.HarnessError as e:
            pytest.fail(str(e), pytrace=False)
        return p
    return start


def _stopped_after(cls):
    """A factory fixture's body: cls(*args, **kw) as often as the test
    asks, every one stopped at the end of the test."""
    made = []

    def make(*args, **kw):
        obj = cls(*args, **kw)
        made.append(obj)
        return obj
    yield make
    for obj in made:
        obj.stop()


@pytest.fixture
def fake_smtp():
    yield from _stopped_after(smtp_util.FakeSMTP)


@pytest.fixture
def auth_stub():
    yield from _stopped_after(smtp_util.AuthStub)


@pytest.fixture
def dns():
    yield from _stopped_after(smtp_util.DNSStub)
