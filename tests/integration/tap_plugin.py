"""pytest plugin: one TAP line per test, for automake's TAP driver.

Loaded with `-p tap_plugin` by tests/integration/run-pytest.  The TAP
stream goes to the file descriptor named by POSTERN_TAP_FD (run-pytest
points it at the driver's stdout and sends pytest's own report to stderr,
which lands in the .log file); without it, to stdout.

  ok N - NODEID
  not ok N - NODEID
  ok N - NODEID # SKIP reason
  not ok N - NODEID # TODO reason     (xfail: expected failure)
  1..N                                (the plan, at the end)

A collection error is a failed test of its own.
"""

import os

_state = {"n": 0, "failed": 0, "reports": {}}


def _emit(line):
    fd = int(os.environ.get("POSTERN_TAP_FD", "1"))
    data = (line + "\n").encode("utf-8", "replace")
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _clean(text):
    # a TAP line is one line; '#' would start a directive
    return " ".join(str(text).split()).replace("#", "%23")


def _result(ok, nodeid, directive=""):
    _state["n"] += 1
    if not ok and not directive.startswith("TODO"):
        _state["failed"] += 1
    line = "%s %d - %s" % ("ok" if ok else "not ok", _state["n"],
                           _clean(nodeid))
    if directive:
        line += " # " + directive
    _emit(line)


def _skip_reason(rep):
    lr = rep.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        reason = lr[2]
    else:
        reason = str(lr)
    if reason.startswith("Skipped: "):
        reason = reason[len("Skipped: "):]
    return _clean(reason)


def pytest_collectreport(report):
    if report.failed:
        _result(False, "collect " + (report.nodeid or "session"))


def pytest_runtest_logreport(report):
    _state["reports"].setdefault(report.nodeid, []).append(report)


def pytest_runtest_logfinish(nodeid, location):
    reports = _state["reports"].pop(nodeid, [])
    failed = [r for r in reports if r.failed]
    skipped = [r for r in reports if r.skipped]
    xfail = [r for r in reports if hasattr(r, "wasxfail")]
    if failed:
        _result(False, nodeid)
    elif xfail:
        r = xfail[0]
        if r.skipped:
            _result(False, nodeid, "TODO " + _clean(r.wasxfail or "xfail"))
        else:
            _result(True, nodeid, "TODO unexpectedly passed")
    elif skipped:
        _result(True, nodeid, "SKIP " + _skip_reason(skipped[0]))
    else:
        _result(True, nodeid)


def pytest_sessionfinish(session, exitstatus):
    # interruption (e.g. the run's time limit) still gets a plan, so the
    # driver counts what ran and reports the rest as missing
    _emit("1..%d" % _state["n"])


def pytest_configure(config):
    config.tap_failed = lambda: _state["failed"]
