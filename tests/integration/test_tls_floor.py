"""The TLS floor no config string can lower: security level 2 and ECDHE+AEAD.

A cipher string with `@SECLEVEL=0` used to pass --check-config and a reload
and then let an RSA-1024 / SHA-1 client certificate in. Now net/tls refuses
such a string by name (check-config exit 1, a reload keeps the running
config) and the weak certificate is refused before and after the attempt.
An expired CRL answers the client with certificate_unknown, not
"certificate expired" (its certificate is fine; revocation could not be
checked).
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def openssl(*argv):
    r = harness.run(["openssl"] + list(argv), timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl %s failed: %s" % (argv[0], r.stderr.decode(errors="replace")))


class TlsFloorTest(harness.IntegrationTest):

    def weak_cert(self):
        """An RSA-1024 client certificate with a SHA-1 signature from the dev CA."""
        key = os.path.join(self.tmp, "weak.key")
        csr = os.path.join(self.tmp, "weak.csr")
        crt = os.path.join(self.tmp, "weak.crt")
        openssl("req", "-newkey", "rsa:1024", "-nodes", "-keyout", key, "-out", csr,
                "-subj", "/CN=weak-client")
        openssl("x509", "-req", "-sha1", "-in", csr, "-CA", self.certs["ca_crt"], "-CAkey",
                self.certs["ca_key"], "-set_serial", "4343", "-days", "30", "-out", crt)
        return crt, key

    def weak_client_gets_in(self, port, crt, key):
        # The client itself runs at level 0 so that only the server can refuse.
        ok, out = harness.s_client(port, ["-tls1_2", "-cipher", "DEFAULT@SECLEVEL=0",
                                          "-cert", crt, "-key", key], input=b"hello\n")
        return ok, out

    def test_seclevel_string_refused_everywhere(self):
        crt, key = self.weak_cert()
        echo = self.upstream("echo")
        port = harness.free_port()
        lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % port, echo.addr,
                                   client_auth="required")
        cfg = harness.base_config(harness.free_port(), [lst])
        bs = self.start_brokerside(cfg)

        ok, out = self.weak_client_gets_in(port, crt, key)
        self.assertFalse(ok, "RSA-1024/SHA-1 client certificate accepted:\n" + out)
        # the real client still gets in
        ok, out = harness.s_client(port, ["-cert", self.certs["client_crt"], "-key",
                                          self.certs["client_key"]], ca=self.certs["ca_crt"])
        self.assertTrue(ok, out)

        weak = dict(cfg)
        weak["listeners"] = [dict(lst, tls=dict(lst["tls"], ciphers="ECDHE+AESGCM:@SECLEVEL=0"))]
        path = os.path.join(self.tmp, "weak.json")
        import json
        with open(path, "w") as f:
            json.dump(weak, f)
        r = harness.run([harness.BROKERSIDE, "--check-config", path])
        err = (r.stdout + r.stderr).decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertIn("security level 0", err)

        # the same file by SIGHUP: refused, the running config stays
        mark = bs.log_mark()
        bs.write_config(weak)
        bs.signal(signal.SIGHUP)
        bs.wait_log(r"reload: refused", since=mark)
        self.assertIn("security level 0", bs.log_text()[mark:])
        ok, out = self.weak_client_gets_in(port, crt, key)
        self.assertFalse(ok, "RSA-1024/SHA-1 client certificate accepted after reload:\n" + out)

    def test_expired_crl_alert(self):
        # A CRL whose nextUpdate has passed: every client of that CA is refused
        # (crl_error) and told certificate_unknown.
        crl = os.path.join(self.tmp, "stale.crl")
        ca_dir = os.path.join(self.tmp, "ca")
        os.makedirs(ca_dir)
        open(os.path.join(ca_dir, "index.txt"), "w").close()
        cnf = os.path.join(ca_dir, "ca.cnf")
        with open(cnf, "w") as f:
            f.write("[ca]\ndefault_ca=d\n[d]\ndatabase=%s/index.txt\ndefault_md=sha256\n"
                    "crlnumber=%s/crlnumber\n" % (ca_dir, ca_dir))
        with open(os.path.join(ca_dir, "crlnumber"), "w") as f:
            f.write("01\n")
        # -crl_lastupdate / -crl_nextupdate (OpenSSL 3) put nextUpdate in the past
        openssl("ca", "-batch", "-config", cnf, "-gencrl", "-keyfile", self.certs["ca_key"],
                "-cert", self.certs["ca_crt"], "-crl_lastupdate", "20200101000000Z",
                "-crl_nextupdate", "20200102000000Z", "-out", crl)
        echo = self.upstream("echo")
        bs, port = self.sidecar(echo.addr, client_auth="required", tls_extra={"crl": crl})
        before = self.failures(bs, "crl_error")
        ok, out = harness.s_client(port, ["-tls1_2", "-cert", self.certs["client_crt"], "-key",
                                          self.certs["client_key"]], ca=self.certs["ca_crt"])
        self.assertFalse(ok, out)
        self.assertIn("certificate unknown", out)
        self.assertNotIn("certificate expired", out)
        self.wait_failures(bs, "crl_error", before + 1)


if __name__ == "__main__":
    harness.main()
