#!/usr/bin/python3
"""authsvc.py - a scripted auth service speaking NGINX's auth_http protocol,
for postern's integration tests.  Python 3 standard library only.

    authsvc.py PORT USERS.json [LOGFILE] [--log FILE] [--control FILE]
               [--unix PATH] [--fail-wait N] [--keepalive]

PORT 0 lets the kernel choose; the port (or the unix socket path) is
printed as the first line on stdout once the service accepts connections.
LOGFILE and --log are the same thing.

USERS.json maps login names to backends; it is re-read for every request,
so a test may rewrite it (atomically) while the service runs:

    {"alice": {"pass": "secret",            (or "password")
               "server": "127.0.0.1",
               "port": 1143,                (or "ports": {"imap": 1143,
                                                 "pop3": 1110, "smtp": 2525})
               "backend_user": "alice@backend",     (optional: Auth-User)
               "backend_pass": "other"},            (optional: Auth-Pass)
     "*":     {"server": "127.0.0.1", "port": 2525}}  (SMTP without AUTH)

A user whose entry has no port for the request's Auth-Protocol is refused
with "Auth-Status: No backend for PROTOCOL".

Checks plain (and login, which NGINX and postern send as "plain"), apop
and cram-md5 (digests computed from the stored password and Auth-Salt),
external (Auth-SSL-Verify: SUCCESS and a known user) and none (the "*"
entry).  Auth-User and Auth-Pass are URL-unescaped first, as NGINX's
escaping requires.  A refusal is "Auth-Status: Invalid login or password",
with "Auth-Wait: N" only under --fail-wait N (without it NGINX and postern
close the session after the error).

With --keepalive, a request asking "Connection: keep-alive" gets it (the
answer says so, with Content-Length: 0) and the connection stays open for
the next request; without it, every connection is closed after one answer.

Every request is appended to the --log file as one JSON line (a slow one
when it arrives, with "result": "SLOW"):
    {"time": ..., "path": "/auth", "mode": "normal",
     "headers": {"Auth-Method": "plain", ...}, "user": "alice",
     "result": "OK", "conn": 1}
("conn" numbers the connection the request came on.)
("headers" holds every request header as received; "user" the decoded
login; "pass" is never decoded into the log.)

Misbehaviour, chosen by the --control file (JSON {"mode": "slow",
"delay": 3}, re-read for every request; missing or empty: not used) or
else by the last part of the request path:
    /slow?delay=N   answer normally after N seconds (default 5)
    /down           close the connection without a reply
    /garbled        answer with bytes that are not HTTP
    /wait           "Auth-Status: Invalid login or password" + Auth-Wait: 1
    /error-code     refusal with "Auth-Error-Code: 535 5.7.8" (SMTP)
    /tempfail       NGINX's temporary failure example: "Temporary server
                    problem, try again later", Auth-Error-Code 451 4.3.0,
                    Auth-Wait: 1
    /http500        "HTTP/1.0 500" without any Auth-* header
    /status-wait    "Auth-Status: WAIT" + Auth-Wait: 1, then normal service
                    on the next status-wait request, and so on
    anything else   normal service
"""

import argparse
import hashlib
import hmac
import http.server
import json
import os
import signal
import socketserver
import sys
import threading
import time
import urllib.parse

MODES = ("normal", "slow", "down", "garbled", "wait", "error-code",
         "tempfail", "http500", "status-wait")


def unescape(value):
    """Bytes of a header value escaped the NGINX way (%XX)."""
    # http.server decodes header bytes as latin-1: turn them back into bytes
    return urllib.parse.unquote_to_bytes(value.encode("latin-1"))


def secret_of(entry):
    """A users entry's clear-text password ("pass" or "password")."""
    if "pass" in entry:
        return entry["pass"]
    return entry.get("password")


class Service:
    """Shared state: users, log file, control file, counters."""

    def __init__(self, users_path, log_path, control_path, fail_wait):
        self.users_path = users_path
        self.users = None
        self.load_users()
        self.log_path = log_path
        self.control_path = control_path
        self.fail_wait = fail_wait
        self.lock = threading.Lock()
        self.count = 0
        self.conns = 0
        self.waited = False

    def load_users(self):
        """The users file now; the last good one if it cannot be read."""
        try:
            with open(self.users_path, encoding="utf-8") as f:
                self.users = json.load(f)
        except (OSError, ValueError) as e:
            print("authsvc: cannot read %s: %s" % (self.users_path, e),
                  file=sys.stderr, flush=True)
        return self.users

    def control(self):
        """The control file's settings, or None."""
        if not self.control_path:
            return None
        try:
            with open(self.control_path, encoding="utf-8") as f:
                text = f.read().strip()
        except OSError:
            return None
        if not text:
            return None
        return json.loads(text)

    def log(self, record):
        if not self.log_path or not record:
            return
        line = json.dumps(record, sort_keys=True) + "\n"
        with self.lock:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()

    def toggle_wait(self):
        """True for the 1st, 3rd, ... status-wait request: answer WAIT."""
        with self.lock:
            self.waited = not self.waited
            return self.waited

    def next_count(self):
        with self.lock:
            self.count += 1
            return self.count

    def next_conn(self):
        with self.lock:
            self.conns += 1
            return self.conns


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "authsvc"

    def log_message(self, fmt, *args):  # quiet: the JSON log is the record
        pass

    def setup(self):
        super().setup()
        self.conn_id = self.server.service.next_conn()

    def address_string(self):  # unix sockets have no client address
        if isinstance(self.client_address, tuple):
            return str(self.client_address[0])
        return "unix"

    def send_raw(self, text):
        try:
            self.wfile.write(text if isinstance(text, bytes)
                             else text.encode("latin-1"))
            self.wfile.flush()
        except OSError:
            pass

    def reply(self, headers, status="200 OK"):
        lines = ["HTTP/1.0 " + status]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        if not self.close_connection:   # --keepalive and the client asked
            lines += ["Connection: keep-alive", "Content-Length: 0"]
        self.send_raw("\r\n".join(lines) + "\r\n\r\n")

    def do_GET(self):  # noqa: N802 (http.server's naming)
        svc = self.server.service
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        last = url.path.rstrip("/").rsplit("/", 1)[-1]
        mode = last if last in MODES else "normal"
        delay = float(query.get("delay", ["5"])[0])
        ctl = svc.control()
        if ctl is not None:
            mode = ctl.get("mode", "normal")
            delay = float(ctl.get("delay", delay))
        number = svc.next_count()

        headers = {}
        for k, v in self.headers.items():
            headers[k] = v
        record = {"time": time.time(), "path": self.path, "mode": mode,
                  "headers": headers, "n": number, "conn": self.conn_id}
        try:
            record["user"] = unescape(
                self.headers.get("Auth-User", "")).decode("utf-8",
                                                           "replace")
        except UnicodeError:
            record["user"] = None

        if mode == "slow":
            # logged on arrival: the client may give up before the answer
            record["result"] = "SLOW"
            svc.log(record)
            record = {}
            time.sleep(delay)
            mode = "normal"
        if mode == "status-wait" and svc.toggle_wait():
            record["result"] = "WAIT"
            svc.log(record)
            self.reply([("Auth-Status", "WAIT"), ("Auth-Wait", "1")])
            return
        if mode == "down":
            record["result"] = "DOWN"
            svc.log(record)
            self.close_connection = True
            return
        if mode == "garbled":
            record["result"] = "GARBLED"
            svc.log(record)
            self.close_connection = True
            self.send_raw(b"SMTP? \x00\x01 this is not HTTP\r\n\r\n")
            return
        if mode == "http500":
            record["result"] = "HTTP500"
            svc.log(record)
            self.close_connection = True
            self.send_raw("HTTP/1.0 500 Internal Server Error\r\n"
                          "Content-Type: text/plain\r\n\r\nbroken\r\n")
            return
        if mode == "tempfail":
            record["result"] = "TEMPFAIL"
            svc.log(record)
            self.reply([("Auth-Status",
                         "Temporary server problem, try again later"),
                        ("Auth-Error-Code", "451 4.3.0"),
                        ("Auth-Wait", "1")])
            return

        svc.load_users()
        ok, entry, method = self.check(svc)
        if mode in ("wait", "error-code"):
            ok = False
        port = None
        proto = self.headers.get("Auth-Protocol", "").strip().lower()
        if ok:
            port = entry.get("port")
            if isinstance(entry.get("ports"), dict):
                port = entry["ports"].get(proto, port)
            if port is None:
                record["result"] = "NOPORT"
                svc.log(record)
                self.reply([("Auth-Status", "No backend for %s" % proto)])
                return
        if ok:
            out = [("Auth-Status", "OK"),
                   ("Auth-Server", entry.get("server", "127.0.0.1")),
                   ("Auth-Port", str(port))]
            if entry.get("backend_user"):
                out.append(("Auth-User", entry["backend_user"]))
            if entry.get("backend_pass"):
                out.append(("Auth-Pass", entry["backend_pass"]))
            elif method in ("apop", "cram-md5", "external") \
                    and secret_of(entry) is not None:
                # the proxy needs the clear password for the backend login
                out.append(("Auth-Pass", secret_of(entry)))
            record["result"] = "OK"
            svc.log(record)
            self.reply(out)
            return

        out = []
        if mode == "error-code":
            out.append(("Auth-Status", "Authentication failed"))
            out.append(("Auth-Error-Code", "535 5.7.8"))
        else:
            out.append(("Auth-Status", "Invalid login or password"))
        if mode == "wait":
            out.append(("Auth-Wait", "1"))
        elif svc.fail_wait is not None:
            out.append(("Auth-Wait", str(svc.fail_wait)))
        record["result"] = "FAIL"
        svc.log(record)
        self.reply(out)

    def check(self, svc):
        """(ok, users entry, method) for this request's credentials."""
        h = self.headers
        method = h.get("Auth-Method", "").strip().lower()
        try:
            user = unescape(h.get("Auth-User", "")).decode("utf-8")
        except UnicodeError:
            return False, None, method
        given = unescape(h.get("Auth-Pass", ""))
        salt = h.get("Auth-Salt", "").strip().encode("latin-1")

        if method == "none":
            entry = svc.users.get("*")
            return entry is not None, entry, method
        entry = svc.users.get(user)
        if entry is None or user == "*":
            return False, None, method
        secret = (secret_of(entry) or "").encode("utf-8")
        if method in ("plain", "login"):
            ok = hmac.compare_digest(given, secret)
        elif method == "apop":
            want = hashlib.md5(salt + secret).hexdigest().encode()
            ok = hmac.compare_digest(given.lower(), want)
        elif method == "cram-md5":
            want = hmac.new(secret, salt, hashlib.md5).hexdigest().encode()
            ok = hmac.compare_digest(given.lower(), want)
        elif method == "external":
            ok = h.get("Auth-SSL-Verify", "") == "SUCCESS"
        else:
            ok = False
        return ok, entry, method


class TCPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser(description="NGINX-style auth service "
                                 "for postern's tests")
    ap.add_argument("port", type=int, help="TCP port on 127.0.0.1 (0: pick)")
    ap.add_argument("users", help="users JSON file")
    ap.add_argument("logfile", nargs="?", help="same as --log")
    ap.add_argument("--log", help="append every request as a JSON line")
    ap.add_argument("--control", help="JSON file choosing a misbehaviour")
    ap.add_argument("--unix", help="listen on this unix socket instead")
    ap.add_argument("--fail-wait", type=int, default=None,
                    help="send Auth-Wait: N with every refusal")
    ap.add_argument("--keepalive", action="store_true",
                    help="keep connections open when a request asks")
    args = ap.parse_args()
    if args.keepalive:
        # http.server keeps a connection open for "Connection: keep-alive"
        # only when it speaks HTTP/1.1
        Handler.protocol_version = "HTTP/1.1"

    service = Service(args.users, args.log or args.logfile, args.control,
                      args.fail_wait)
    if not isinstance(service.users, dict):
        print("authsvc: %s holds no users object" % args.users,
              file=sys.stderr)
        return 2

    if args.unix:
        try:
            os.unlink(args.unix)
        except FileNotFoundError:
            pass
        server = UnixServer(args.unix, Handler)
        where = args.unix
    else:
        server = TCPServer(("127.0.0.1", args.port), Handler)
        where = str(server.server_address[1])
    server.service = service

    def on_term(signum, frame):
        raise KeyboardInterrupt  # leave serve_forever, clean up below

    signal.signal(signal.SIGTERM, on_term)
    print(where, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if args.unix:
            try:
                os.unlink(args.unix)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
