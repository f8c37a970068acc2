"""Client certificates (`client_auth`): required and optional, against the dev CA.

Refusals are checked with real Kafka clients (kcat through the sidecar to the
real Kafka broker) and, for a precise failure reason, with openssl s_client pinned
to TLS 1.2 (with TLS 1.3 the server judges the client certificate after the
client already considers the handshake done, so only TLS 1.2 makes the
refusal visible in the handshake itself).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# Reasons bs_tls_failure_reason may give for a missing or untrusted client cert.
MISSING_CERT_REASONS = ("certificate_required", "bad_certificate")
UNTRUSTED_CERT_REASONS = ("unknown_ca", "bad_certificate")


def kcat_meta(addr, certs, cert=None, key=None):
    """kcat -L over TLS with an explicit (or no) client certificate."""
    args = ["-X", "security.protocol=SSL", "-X", "ssl.ca.location=" + certs["ca_crt"]]
    if cert:
        args += ["-X", "ssl.certificate.location=" + cert, "-X", "ssl.key.location=" + key]
    return harness.run(["kcat", "-b", addr, "-L", "-m", "10"] + args, timeout=60)


class ClientAuthRequiredTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.kc, self.bs, self.port = self.cluster(client_auth="required")
        self.addr = "127.0.0.1:%d" % self.port

    def reasons(self, names):
        m = self.bs.metrics()
        return sum(harness.metric(m, harness.M_HS_FAILURES, reason=r) for r in names)

    def test_dev_client_cert_works(self):
        r = kcat_meta(self.addr, self.certs, self.certs["client_crt"], self.certs["client_key"])
        self.assertEqual(r.returncode, 0, r.stderr)
        msgs = ["authenticated-%d" % i for i in range(10)]
        harness.kcat_produce(self.addr, "test", msgs, self.certs)
        self.assertEqual(harness.kcat_consume(self.addr, "test", len(msgs), self.certs), msgs)

    def test_no_cert_refused(self):
        before = self.reasons(MISSING_CERT_REASONS)
        r = kcat_meta(self.addr, self.certs)
        self.assertNotEqual(r.returncode, 0, "metadata served without a client certificate")
        ok, out = harness.s_client(self.port, ["-tls1_2"], ca=self.certs["ca_crt"])
        self.assertFalse(ok, out)
        harness.wait_until(lambda: self.reasons(MISSING_CERT_REASONS) >= before + 1,
                           what="a handshake failure for the missing client certificate")

    def test_untrusted_cert_refused(self):
        before = self.reasons(UNTRUSTED_CERT_REASONS)
        r = kcat_meta(self.addr, self.certs, self.certs["untrusted_client_crt"],
                      self.certs["untrusted_client_key"])
        self.assertNotEqual(r.returncode, 0, "metadata served to a client of another CA")
        ok, out = harness.s_client(self.port, ["-tls1_2", "-cert", self.certs["untrusted_client_crt"],
                                               "-key", self.certs["untrusted_client_key"]],
                                   ca=self.certs["ca_crt"])
        self.assertFalse(ok, out)
        harness.wait_until(lambda: self.reasons(UNTRUSTED_CERT_REASONS) >= before + 1,
                           what="a handshake failure for the untrusted client certificate")

    def test_tls13_without_cert_gets_no_kafka_answer(self):
        # A TLS 1.3 client may finish its side of the handshake before the
        # server judges the (missing) certificate; what matters is that its
        # request never reaches the broker: an alert or a close, no answer.
        import ssl
        try:
            s = harness.tls_connect(self.port, self.certs)
        except (ssl.SSLError, OSError):
            return  # refused during the handshake: also correct
        with s:
            try:
                s.sendall(harness.kafka_api_versions_request())
                data = s.recv(4)
            except (ssl.SSLError, OSError):
                data = b""
        self.assertEqual(data, b"", "the broker answered a client without a certificate")


class ClientAuthOptionalTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.kc, self.bs, self.port = self.cluster(client_auth="optional")
        self.addr = "127.0.0.1:%d" % self.port

    def test_no_cert_works(self):
        msgs = ["anonymous-%d" % i for i in range(5)]
        harness.kcat_produce(self.addr, "test", msgs, self.certs, client_cert=False)
        self.assertEqual(harness.kcat_consume(self.addr, "test", len(msgs), self.certs,
                                              client_cert=False), msgs)
        ok, out = harness.s_client(self.port, ["-tls1_2"], ca=self.certs["ca_crt"])
        self.assertTrue(ok, out)

    def test_dev_cert_works(self):
        r = kcat_meta(self.addr, self.certs, self.certs["client_crt"], self.certs["client_key"])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_untrusted_cert_refused(self):
        # A certificate that is presented is verified, even when optional.
        r = kcat_meta(self.addr, self.certs, self.certs["untrusted_client_crt"],
                      self.certs["untrusted_client_key"])
        self.assertNotEqual(r.returncode, 0, "a certificate of another CA was accepted")


if __name__ == "__main__":
    harness.main()
