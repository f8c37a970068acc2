"""TLS policy on a listener with the default settings: TLS 1.2 minimum, TLS 1.2
ciphers limited to ECDHE with AES-GCM or ChaCha20-Poly1305, no insecure renegotiation.

The clients are openssl s_client, sslscan and testssl.sh. Old protocols are
offered with `-cipher DEFAULT@SECLEVEL=0` so that the client would accept them
and any refusal is brokerside's. The dev certificates are ECDSA (P-256), so
the ECDSA variants of weak suites are the ones a lax server could pick.
"""

import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

WEAK_TLS12_CIPHERS = [
    "ECDHE-ECDSA-AES128-SHA",      # CBC with SHA-1
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-ECDSA-AES128-SHA256",   # CBC
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES128-SHA",
    "AES128-SHA256",               # static RSA key exchange, no forward secrecy
    "AES128-GCM-SHA256",
    "DHE-RSA-AES128-GCM-SHA256",   # finite-field DHE
    "ECDHE-ECDSA-NULL-SHA",        # no encryption at all
]
GOOD_TLS12_CIPHERS = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
]


class TlsPolicyTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.echo = self.upstream("echo")
        self.bs, self.port = self.sidecar(self.echo.addr)

    def test_tls10_and_tls11_refused(self):
        before = self.failures(self.bs, "protocol_version")
        for flag in ("-tls1", "-tls1_1"):
            ok, out = harness.s_client(self.port, [flag, "-cipher", "DEFAULT@SECLEVEL=0"])
            self.assertFalse(ok, "%s accepted:\n%s" % (flag, out))
        self.wait_failures(self.bs, "protocol_version", before + 2)

    def test_tls12_and_tls13_accepted(self):
        for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            ok, out = harness.s_client(self.port, [flag], ca=self.certs["ca_crt"])
            self.assertTrue(ok, "%s refused:\n%s" % (flag, out))
            self.assertIn("Protocol version: %s" % name, out)

    def test_data_flows_after_handshake(self):
        with harness.tls_connect(self.port, self.certs) as s:
            s.sendall(b"ping through the sidecar")
            self.assertEqual(harness.recv_exact(s, 24), b"ping through the sidecar")

    def test_weak_tls12_ciphers_refused(self):
        before = self.failures(self.bs, "no_shared_cipher")
        for c in WEAK_TLS12_CIPHERS:
            ok, out = harness.s_client(self.port, ["-tls1_2", "-cipher", c + "@SECLEVEL=0"])
            self.assertFalse(ok, "weak cipher %s accepted:\n%s" % (c, out))
        self.wait_failures(self.bs, "no_shared_cipher", before + len(WEAK_TLS12_CIPHERS))

    def test_strong_tls12_ciphers_accepted(self):
        for c in GOOD_TLS12_CIPHERS:
            ok, out = harness.s_client(self.port, ["-tls1_2", "-cipher", c], ca=self.certs["ca_crt"])
            self.assertTrue(ok, "%s refused:\n%s" % (c, out))
            self.assertIn(c, out)

    def test_sslscan(self):
        r = harness.run(["sslscan", "--no-colour", "127.0.0.1:%d" % self.port], timeout=180)
        out = r.stdout.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 0, out + r.stderr.decode(errors="replace"))
        protos = dict(re.findall(r"^(SSLv[23]|TLSv1\.[0-3])\s+(enabled|disabled)$", out, re.M))
        self.assertEqual(protos, {"SSLv2": "disabled", "SSLv3": "disabled", "TLSv1.0": "disabled",
                                  "TLSv1.1": "disabled", "TLSv1.2": "enabled",
                                  "TLSv1.3": "enabled"}, out)
        accepted = re.findall(r"^(?:Accepted|Preferred)\s+(\S+)\s+\d+ bits\s+(\S+)", out, re.M)
        self.assertTrue(accepted, out)
        for proto, cipher in accepted:
            self.assertIn(proto, ("TLSv1.2", "TLSv1.3"), out)
            if proto == "TLSv1.2":
                self.assertRegex(cipher, r"^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)"
                                         r"|CHACHA20-POLY1305)$")
        self.assertNotIn("Insecure session renegotiation supported", out)
        self.assertNotRegex(out, r"(?m)^Compression enabled")

    def test_testssl_protocols(self):
        exe = shutil.which("testssl") or shutil.which("testssl.sh")
        self.assertTrue(exe, "testssl.sh not installed (make deps installs it)")
        r = harness.run([exe, "--protocols", "--quiet", "--color", "0", "--warnings", "off",
                         "127.0.0.1:%d" % self.port], timeout=240)
        out = r.stdout.decode("utf-8", "replace")
        for proto in ("SSLv2", "SSLv3", "TLS 1 ", "TLS 1.1"):
            self.assertRegex(out, r"(?m)^\s*%s\s+not offered" % re.escape(proto.strip()), out)
        self.assertRegex(out, r"(?m)^\s*TLS 1\.2\s+offered", out)
        self.assertRegex(out, r"(?m)^\s*TLS 1\.3\s+offered", out)


if __name__ == "__main__":
    harness.main()
