"""Test certificates and TLS client helpers for test_tls.py.

Certificates are made at test time with `openssl` (nothing is checked in):

  ca            a test CA (RSA) that signs the server and client certificates
  rsa, ecdsa    server pairs for CN=localhost with SAN localhost, 127.0.0.1
  rsa2          another RSA server pair (CN=renewed.localhost) for reloads
  enc           the RSA key again, encrypted with a password (enc.pass holds
                a wrong password on the first line and the right one next)
  client        a client certificate (CN=alice) signed by the CA
  other_ca,
  other_client  a second CA and a client certificate it signed
  ticket.key    80 random bytes for ssl_session_ticket_key

Also: a Dovecot fixture that allows 200 parallel logins of one user, and
a wrapper around `openssl s_client`.
"""

import os
import shutil
import ssl
import subprocess

import harness

OPENSSL = "openssl"


def _openssl(*args, cwd):
    r = subprocess.run((OPENSSL,) + args, cwd=cwd, capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise harness.HarnessError("openssl %s failed: %s%s"
                                   % (" ".join(args), r.stdout, r.stderr))
    return r.stdout


class Certs:
    """A directory of test certificates; attributes are absolute paths."""

    def __init__(self, d):
        self.dir = d

    def path(self, name):
        return os.path.join(self.dir, name)

    def _key(self, name, kind):
        if kind == "rsa":
            _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                     "rsa_keygen_bits:2048", "-out", name + ".key",
                     cwd=self.dir)
        else:
            _openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                     "ec_paramgen_curve:P-256", "-out", name + ".key",
                     cwd=self.dir)

    def _ca(self, name, cn):
        self._key(name, "rsa")
        _openssl("req", "-x509", "-new", "-key", name + ".key", "-sha256",
                 "-days", "30", "-subj", "/O=postern test/CN=" + cn,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-out", name + ".pem", cwd=self.dir)

    def _leaf(self, name, kind, cn, ca, server=True, subj=None):
        self._key(name, kind)
        _openssl("req", "-new", "-utf8", "-key", name + ".key", "-subj",
                 subj or "/O=postern test/CN=" + cn, "-out", name + ".csr",
                 cwd=self.dir)
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            if server:
                f.write("subjectAltName=DNS:localhost,DNS:%s,IP:127.0.0.1\n"
                        "extendedKeyUsage=serverAuth\n" % cn)
            else:
                f.write("extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
                 "-CAkey", ca + ".key", "-CAcreateserial", "-sha256",
                 "-days", "30", "-extfile", ext, "-out", name + ".pem",
                 cwd=self.dir)

    def make(self):
        self._ca("ca", "postern test CA")
        self._leaf("rsa", "rsa", "localhost", "ca")
        self._leaf("ecdsa", "ec", "localhost", "ca")
        self._leaf("rsa2", "rsa", "renewed.localhost", "ca")
        self._leaf("client", "rsa", "alice", "ca", server=False)
        # a subject with the attributes whose names or bytes GnuTLS and
        # OpenSSL write differently (see src/tls_dn.c)
        self._leaf("rich_client", "ec", None, "ca", server=False,
                   subj="/C=DE/O=Acme, Inc./GN=J\u00fcrgen/SN=M\u00fcller"
                        "/CN=J\u00fcrgen M\u00fcller #1"
                        "/emailAddress=alice@example.test")
        self._ca("other_ca", "another CA")
        self._leaf("other_client", "rsa", "alice", "other_ca", server=False)
        # other_client with its (self-signed, untrusted) CA after it
        with open(self.path("other_chain.pem"), "w") as out:
            for part in ("other_client.pem", "other_ca.pem"):
                with open(self.path(part)) as f:
                    out.write(f.read())
        shutil.copy(self.path("other_client.key"),
                    self.path("other_chain.key"))
        # a self-signed client certificate
        self._key("selfsigned_client", "ec")
        _openssl("req", "-x509", "-new", "-key", "selfsigned_client.key",
                 "-sha256", "-days", "30", "-subj",
                 "/O=postern test/CN=alice", "-addext",
                 "extendedKeyUsage=clientAuth", "-out",
                 "selfsigned_client.pem", cwd=self.dir)
        _openssl("pkey", "-in", "rsa.key", "-aes256", "-passout",
                 "pass:sesame", "-out", "enc.key", cwd=self.dir)
        with open(self.path("enc.pass"), "w") as f:
            f.write("wrong\nsesame\n")
        with open(self.path("wrong.pass"), "w") as f:
            f.write("wrong\n")
        with open(self.path("ticket.key"), "wb") as f:
            f.write(os.urandom(80))
        return self

    def crl(self, name, ca="ca", revoke=()):
        """NAME.crl: a CRL from CA (due in a week) listing the
        certificates named in REVOKE; its path."""
        work = os.path.join(self.dir, name + ".crl.d")
        os.makedirs(work, exist_ok=True)
        with open(os.path.join(work, "ca.cnf"), "w") as f:
            f.write("[ca]\ndefault_ca = c\n[c]\ndatabase = index.txt\n"
                    "crlnumber = crlnumber\ndefault_md = sha256\n"
                    "default_crl_days = 7\n")
        with open(os.path.join(work, "index.txt"), "w"):
            pass
        with open(os.path.join(work, "crlnumber"), "w") as f:
            f.write("01\n")
        keys = ("-config", "ca.cnf", "-keyfile", self.path(ca + ".key"),
                "-cert", self.path(ca + ".pem"))
        for cert in revoke:
            _openssl("ca", *keys, "-revoke", self.path(cert + ".pem"),
                     cwd=work)
        _openssl("ca", *keys, "-gencrl", "-out", self.path(name + ".crl"),
                 cwd=work)
        return self.path(name + ".crl")

    def fingerprint(self, name):
        """SHA-256 fingerprint of NAME.pem as openssl prints it."""
        out = _openssl("x509", "-in", name + ".pem", "-noout",
                       "-fingerprint", "-sha256", cwd=self.dir)
        return out.strip().split("=", 1)[1]

    def server_settings(self, *names):
        """ssl_certificate / ssl_certificate_key for the named pairs."""
        if len(names) == 1:
            return {"ssl_certificate": self.path(names[0] + ".pem"),
                    "ssl_certificate_key": self.path(names[0] + ".key")}
        return {"ssl_certificate": [self.path(n + ".pem") for n in names],
                "ssl_certificate_key": [self.path(n + ".key")
                                        for n in names]}

    def client_context(self, verify=True, cert=None):
        """An ssl.SSLContext trusting the test CA (or trusting nothing)."""
        if verify:
            ctx = ssl.create_default_context(cafile=self.path("ca.pem"))
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cert:
            ctx.load_cert_chain(self.path(cert + ".pem"),
                                self.path(cert + ".key"))
        return ctx


class ManyLoginsDovecot(harness.Dovecot):
    """The harness's Dovecot with room for 200+ parallel sessions of one
    user (mail_max_userip_connections and the process limits)."""

    def config(self):
        return super().config() + """
default_process_limit = 600
default_client_limit = 2000
mail_max_userip_connections = 600
service imap {
  process_limit = 600
}
"""


def s_client(port, args=(), stdin=b"", timeout=20):
    """Run `openssl s_client -ign_eof` against 127.0.0.1:port, sending
    stdin (which should end the session: LOGOUT, QUIT); returns
    (returncode, stdout+stderr as text)."""
    argv = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port,
            "-servername", "localhost", "-ign_eof"] + list(args)
    r = subprocess.run(argv, input=stdin, capture_output=True,
                       timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")

