#!/usr/bin/python3
"""dnsstub.py - a tiny UDP DNS responder for postern's resolver tests.

Standard library only.  Answers PTR, A and AAAA questions from a JSON map,
and misbehaves on request.  Loopback only.

    dnsstub.py [--bind 127.0.0.1] [--port 0] [--mode MODE] [--delay SEC]
               [--ttl N] [--log FILE] [--lifetime SEC] MAP

MAP is JSON (or @FILE holding JSON):

    {
      "ptr":   {"127.0.0.1": "good.example.test", "::1": "good6.example.test"},
      "a":     {"good.example.test": ["127.0.0.1"]},
      "aaaa":  {"good6.example.test": ["::1"]},
      "modes": {"127.0.0.3": "slow", "bad.example.test": "mismatch"},
      "ttl":   {"127.0.0.6": 1, "short.example.test": 1}
    }

Keys of "ptr" are addresses (any spelling; IPv6 is normalised); keys of
"modes" and "ttl" are an address (for PTR questions) or a name (for A/AAAA).
A mode given for a key wins over --mode.  Modes:

    normal        answer from the map; unknown names get NXDOMAIN
    missing       NXDOMAIN for everything
    servfail      SERVFAIL
    slow          answer as normal, but after --delay seconds
    mismatch      A/AAAA answers carry 192.0.2.1 / 2001:db8::dead instead
    hostile       PTR names with CR/LF (same as hostile-crlf)
    hostile-crlf, hostile-space, hostile-underscore, hostile-slash
                  PTR names with those bytes inside a label
    hostile-longlabel
                  a PTR name with a label length byte of 64 (malformed)
    hostile-longname
                  a PTR name of 5 labels of 60 bytes (over 255 octets)

On start it prints the UDP port it listens on, one line on stdout, then
serves until killed (or --lifetime seconds, a safety net for leaked stubs).
With --log, every question is appended as "TYPE NAME" lines.
"""

import argparse
import ipaddress
import json
import os
import socket
import struct
import sys
import threading

T_A, T_PTR, T_AAAA = 1, 12, 28
TYPE_NAMES = {T_A: "A", T_PTR: "PTR", T_AAAA: "AAAA"}
RCODE_OK, RCODE_SERVFAIL, RCODE_NXDOMAIN = 0, 2, 3

HOSTILE_PTR = {
    "hostile": [b"evil\r\nX-Injected: 1", b"example", b"test"],
    "hostile-crlf": [b"evil\r\nX-Injected: 1", b"example", b"test"],
    "hostile-space": [b"evil host", b"example", b"test"],
    "hostile-underscore": [b"evil_host", b"example", b"test"],
    "hostile-slash": [b"evil/host", b"example", b"test"],
}


def norm_addr(text):
    """Canonical text of an address, or None."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def reverse_to_addr(qname):
    """'4.3.2.1.in-addr.arpa' / nibbles '.ip6.arpa' -> address text."""
    labels = qname.lower().rstrip(".").split(".")
    if labels[-2:] == ["in-addr", "arpa"] and len(labels) == 6:
        return norm_addr(".".join(reversed(labels[:4])))
    if labels[-2:] == ["ip6", "arpa"] and len(labels) == 34:
        nibbles = "".join(reversed(labels[:32]))
        try:
            return str(ipaddress.IPv6Address(int(nibbles, 16)))
        except ValueError:
            return None
    return None


def encode_labels(labels):
    """Wire form of a list of raw labels (bytes), without length checks."""
    out = b""
    for lab in labels:
        out += bytes([len(lab) & 0xFF]) + lab
    return out + b"\0"


def encode_name(name):
    labels = [x.encode("ascii") for x in name.rstrip(".").split(".") if x]
    return encode_labels(labels)


def parse_query(data):
    """(id, flags, qname, qtype, qclass, question bytes) or None."""
    if len(data) < 12:
        return None
    qid, flags, qd = struct.unpack(">HHH", data[:6])
    if qd != 1 or flags & 0x8000:
        return None
    off, labels = 12, []
    while True:
        if off >= len(data):
            return None
        n = data[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0 or off + 1 + n > len(data):
            return None
        labels.append(data[off + 1:off + 1 + n].decode("latin-1"))
        off += 1 + n
    if off + 4 > len(data):
        return None
    qtype, qclass = struct.unpack(">HH", data[off:off + 4])
    return qid, flags, ".".join(labels), qtype, qclass, data[12:off + 4]


class Stub:
    def __init__(self, args, table):
        self.args = args
        self.ptr = {norm_addr(k) or k: v
                    for k, v in table.get("ptr", {}).items()}
        self.a = {k.lower().rstrip("."): v
                  for k, v in table.get("a", {}).items()}
        self.aaaa = {k.lower().rstrip("."): v
                     for k, v in table.get("aaaa", {}).items()}
        self.modes = {}
        for k, v in table.get("modes", {}).items():
            self.modes[norm_addr(k) or k.lower().rstrip(".")] = v
        self.ttls = {}
        for k, v in table.get("ttl", {}).items():
            self.ttls[norm_addr(k) or k.lower().rstrip(".")] = int(v)
        self.log = open(args.log, "a") if args.log else None
        self.lock = threading.Lock()

    def note(self, qtype, qname):
        if self.log:
            with self.lock:
                kind = TYPE_NAMES.get(qtype, qtype)
                self.log.write("%s %s\n" % (kind, qname))
                self.log.flush()

    def answer(self, data):
        """(reply bytes, delay seconds) or (None, 0) to drop."""
        q = parse_query(data)
        if q is None:
            return None, 0
        qid, qflags, qname, qtype, qclass, question = q
        self.note(qtype, qname)
        if qtype == T_PTR:
            key = reverse_to_addr(qname)
        else:
            key = qname.lower().rstrip(".")
        mode = self.modes.get(key, self.args.mode)
        ttl = self.ttls.get(key, self.args.ttl)
        delay = self.args.delay if mode == "slow" else 0

        rcode, rrs = RCODE_OK, []
        if mode == "missing" or key is None:
            rcode = RCODE_NXDOMAIN
        elif mode == "servfail":
            rcode = RCODE_SERVFAIL
        elif qtype == T_PTR:
            if mode in HOSTILE_PTR:
                rrs.append((T_PTR, encode_labels(HOSTILE_PTR[mode])))
            elif mode == "hostile-longlabel":
                rrs.append((T_PTR, b"\x40" + b"x" * 64 + b"\x04test\0"))
            elif mode == "hostile-longname":
                rrs.append((T_PTR, encode_labels([b"y" * 60] * 5)))
            elif key in self.ptr:
                rrs.append((T_PTR, encode_name(self.ptr[key])))
            else:
                rcode = RCODE_NXDOMAIN
        elif qtype in (T_A, T_AAAA):
            table = self.a if qtype == T_A else self.aaaa
            other = self.aaaa if qtype == T_A else self.a
            if mode == "mismatch":
                addrs = ["192.0.2.1"] if qtype == T_A else ["2001:db8::dead"]
            elif key in table:
                addrs = table[key]
            elif key in other or key in self.ptr.values():
                addrs = []                      # NOERROR, no data
            else:
                addrs = None
            if addrs is None:
                rcode = RCODE_NXDOMAIN
            for text in addrs or []:
                fam = socket.AF_INET if qtype == T_A else socket.AF_INET6
                rrs.append((qtype, socket.inet_pton(fam, text)))
        else:
            rcode = RCODE_NXDOMAIN

        flags = 0x8000 | (qflags & 0x7900) | 0x0400 | 0x0080 | rcode
        out = struct.pack(">HHHHHH", qid, flags, 1, len(rrs), 0, 0) + question
        for rtype, rdata in rrs:
            out += struct.pack(">HHHIH", 0xC00C, rtype, qclass, ttl,
                               len(rdata)) + rdata
        return out, delay


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mode", default="normal")
    ap.add_argument("--delay", type=float, default=3.0)
    ap.add_argument("--ttl", type=int, default=300)
    ap.add_argument("--log")
    ap.add_argument("--lifetime", type=float, default=300.0)
    ap.add_argument("map")
    args = ap.parse_args()

    text = args.map
    if text.startswith("@"):
        with open(text[1:]) as f:
            text = f.read()
    stub = Stub(args, json.loads(text))

    if args.bind not in ("127.0.0.1", "::1"):
        sys.exit("dnsstub.py: loopback addresses only")
    fam = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    sock = socket.socket(fam, socket.SOCK_DGRAM)
    sock.bind((args.bind, args.port))
    print(sock.getsockname()[1], flush=True)

    killer = threading.Timer(args.lifetime, lambda: os._exit(0))
    killer.daemon = True
    killer.start()

    while True:
        data, peer = sock.recvfrom(4096)
        reply, delay = stub.answer(data)
        if reply is None:
            continue
        if delay > 0:
            t = threading.Timer(delay, sock.sendto, (reply, peer))
            t.daemon = True
            t.start()
        else:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
