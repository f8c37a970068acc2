"""Bad input: what is not TLS on a TLS port, stalled handshakes, an upstream
that is down, and broken configuration files.

Each refusal is checked three ways where it applies: the client sees the
connection closed (never a hang, never a byte of broker data), the
handshake-failure counter for the right reason grows, and for plaintext Kafka
the log says what happened in words an operator understands.
"""

import copy
import json
import os
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

GARBAGE = bytes(range(0x80, 0x100)) * 4       # not a TLS record, not Kafka, not HTTP
HTTP_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bs-test\r\n\r\n"
# A TLS handshake record header announcing 512 bytes of ClientHello, followed
# by only the start of it: the server has to wait for the rest forever.
HALF_CLIENT_HELLO = (b"\x16\x03\x01\x02\x00" + b"\x01\x00\x01\xfc\x03\x03" + bytes(32) + b"\x00")


class NotTlsOnTlsPortTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.echo = self.upstream("echo")
        self.bs, self.port = self.sidecar(self.echo.addr,
                                          config_extra={"limits": {"handshake_timeout_s": 1}})

    def refused(self, payload, reason):
        before = self.failures(self.bs, reason)
        data = harness.raw_exchange(self.port, payload, timeout=30)
        # A TLS alert record is an acceptable answer; echoed bytes are not.
        self.assertFalse(data and not data.startswith(b"\x15"),
                         "got non-alert bytes back: %r" % data[:64])
        self.assertEqual(self.echo.received, 0, "bad input reached the upstream")
        self.wait_failures(self.bs, reason, before + 1)

    def test_garbage_bytes(self):
        self.refused(GARBAGE, "not_tls")

    def test_plaintext_kafka(self):
        self.refused(harness.kafka_api_versions_request(), "plaintext_kafka")
        self.bs.wait_log(r"(?i)plaintext.{0,40}kafka|kafka.{0,40}plaintext")

    def test_http_request(self):
        self.refused(HTTP_REQUEST, "http_request")

    def test_half_client_hello_times_out(self):
        # The handshake timeout is 1 s; raw_exchange's 30 s is only a bound
        # against hanging: the assertion is that the server closes at all.
        self.refused(HALF_CLIENT_HELLO, "timeout")

    def test_silent_client_times_out(self):
        self.refused(b"", "timeout")

    def test_still_serves_after_bad_input(self):
        for payload in (GARBAGE, HTTP_REQUEST, harness.kafka_api_versions_request()):
            harness.raw_exchange(self.port, payload, timeout=30)
        with harness.tls_connect(self.port, self.certs) as s:
            s.sendall(b"still alive")
            self.assertEqual(harness.recv_exact(s, 11), b"still alive")


class UpstreamDownTest(harness.IntegrationTest):

    def test_down_then_up(self):
        # The real broker is stopped before brokerside starts, then restarted and stopped again.
        kc = self.kafka(nodes=1)
        kc.reset_topics(["test"])
        kc.stop_node(1)
        self.addCleanup(kc.start_node, 1)   # leave the module's cluster running
        kc, bs, port = self.cluster(topics=())
        addr = "127.0.0.1:%d" % port
        harness.wait_http(bs.url("/readyz"), 503)

        # A TLS client gets a clean close: the handshake may complete, but the
        # request gets no answer and the connection ends (no hang, no reset
        # garbage); ssl reports EOF or an orderly shutdown.
        try:
            s = harness.tls_connect(port, self.certs, client_cert=True)
        except (ssl.SSLError, OSError):
            s = None
        if s is not None:
            with s:
                try:
                    s.sendall(harness.kafka_api_versions_request())
                    data = s.recv(4)
                except (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError):
                    data = b""
            self.assertEqual(data, b"")
        r = harness.kcat(addr, ["-L", "-m", "3"], self.certs, timeout=60)
        self.assertNotEqual(r.returncode, 0, "metadata while the broker is down")

        kc.start_node(1)
        harness.wait_http(bs.url("/readyz"), 200)
        harness.kcat_produce(addr, "test", ["back"], self.certs)
        self.assertEqual(harness.kcat_consume(addr, "test", 1, self.certs), ["back"])

        kc.stop_node(1)
        harness.wait_http(bs.url("/readyz"), 503)
        kc.start_node(1)
        harness.wait_http(bs.url("/readyz"), 200)


class BrokenConfigTest(harness.IntegrationTest):

    def valid(self):
        cfg = harness.base_config(harness.free_port(), [harness.tls_listener(
            self.certs, "127.0.0.1:%d" % harness.free_port(), "127.0.0.1:%d" % harness.free_port(),
            client_auth="required")])
        return cfg

    def check(self, text, name="broken.json"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        r = harness.run([harness.BROKERSIDE, "--check-config", path], timeout=60)
        return path, r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")

    def test_valid_config_passes(self):
        _, rc, out = self.check(json.dumps(self.valid()), "valid.json")
        self.assertEqual(rc, 0, out)

    def broken_cases(self):
        """(label, file text, JSON path the message must name)."""
        cases = []

        def mutate(label, path_in_msg, fn):
            cfg = copy.deepcopy(self.valid())
            fn(cfg)
            cases.append((label, json.dumps(cfg, indent=1), path_in_msg))

        lst = lambda c: c["listeners"][0]  # noqa: E731
        tls = lambda c: c["listeners"][0]["tls"]  # noqa: E731
        cases.append(("syntax error", '{"workers": 1, "listeners": [', None))
        cases.append(("not an object", '[1, 2, 3]', None))
        cases.append(("empty file", '', None))
        mutate("unknown top-level key", "colour", lambda c: c.update(colour="blue"))
        mutate("unknown listener key", "listeners[0]", lambda c: lst(c).update(colour="blue"))
        mutate("unknown tls key", "listeners[0].tls", lambda c: tls(c).update(colour="blue"))
        mutate("missing cert file", "listeners[0].tls.cert",
               lambda c: tls(c).update(cert="/nonexistent/server.crt"))
        mutate("missing key file", "listeners[0].tls.key",
               lambda c: tls(c).update(key="/nonexistent/server.key"))
        mutate("missing client CA", "listeners[0].tls.client_ca",
               lambda c: tls(c).update(client_ca="/nonexistent/ca.crt"))
        mutate("TLS 1.1 minimum", "listeners[0].tls.min_version",
               lambda c: tls(c).update(min_version="TLSv1.1"))
        mutate("TLS 1.0 minimum", "listeners[0].tls.min_version",
               lambda c: tls(c).update(min_version="TLSv1"))
        mutate("bad client_auth", "listeners[0].tls.client_auth",
               lambda c: tls(c).update(client_auth="maybe"))
        mutate("port out of range", "listeners[0].bind",
               lambda c: lst(c).update(bind="127.0.0.1:70000"))
        mutate("port not a number", "listeners[0].upstream",
               lambda c: lst(c).update(upstream="127.0.0.1:kafka"))
        mutate("bind without port", "listeners[0].bind", lambda c: lst(c).update(bind="127.0.0.1"))
        mutate("missing upstream", "listeners[0].upstream", lambda c: lst(c).pop("upstream"))
        mutate("bad protocol", "listeners[0].protocol", lambda c: lst(c).update(protocol="udp"))
        mutate("no listeners", "listeners", lambda c: c.update(listeners=[]))
        mutate("workers not a number", "workers", lambda c: c.update(workers="many"))
        mutate("negative timeout", "limits.handshake_timeout_s",
               lambda c: c.update(limits={"handshake_timeout_s": -1}))
        mutate("bad admin bind", "admin.bind", lambda c: c["admin"].update(bind="nowhere"))
        mutate("bad log level", "log_level", lambda c: c.update(log_level="loud"))
        return cases

    def test_check_config_rejects_each_broken_file(self):
        for label, text, json_path in self.broken_cases():
            with self.subTest(label):
                path, rc, out = self.check(text)
                self.assertEqual(rc, 1, "%s: exit %d\n%s" % (label, rc, out))
                self.assertIn(os.path.basename(path), out, label)
                if json_path:
                    self.assertIn(json_path, out, label)

    def test_every_problem_is_listed(self):
        cfg = self.valid()
        cfg["colour"] = "blue"
        cfg["listeners"][0]["tls"]["min_version"] = "TLSv1.1"
        cfg["listeners"][0]["bind"] = "127.0.0.1:70000"
        _, rc, out = self.check(json.dumps(cfg))
        self.assertEqual(rc, 1, out)
        for p in ("colour", "listeners[0].tls.min_version", "listeners[0].bind"):
            self.assertIn(p, out)

    def test_daemon_refuses_to_start(self):
        for label, text, json_path in self.broken_cases()[:8]:
            with self.subTest(label):
                path = os.path.join(self.tmp, "start.json")
                with open(path, "w") as f:
                    f.write(text)
                r = harness.run([harness.BROKERSIDE, "--config", path], timeout=60)
                out = (r.stdout + r.stderr).decode("utf-8", "replace")
                self.assertNotIn(r.returncode, (0, -9), "%s: exit %d\n%s" % (label, r.returncode, out))
                if json_path:
                    self.assertIn(json_path, out, label)

    def test_missing_file(self):
        r = harness.run([harness.BROKERSIDE, "--check-config", os.path.join(self.tmp, "nope.json")],
                        timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("nope.json", (r.stdout + r.stderr).decode())


if __name__ == "__main__":
    harness.main()
