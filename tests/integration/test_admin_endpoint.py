"""Integration test of the admin endpoint against real HTTP clients and the
reference Prometheus text parser (python3-prometheus-client).

Runs tests/tools/admin_serve (the endpoint over a sample registry) on an
ephemeral port and checks /metrics parses to exactly the sample values,
/status is the documented JSON shape, readiness flips, and the error paths.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import unittest

from prometheus_client.parser import text_string_to_metric_families

BUILD = os.environ.get("BS_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
TOOL = os.path.join(BUILD, "admin_serve")
TIMEOUT = 10  # seconds; only to avoid hangs


class AdminEndpoint(unittest.TestCase):
    proc = None
    port = None

    @classmethod
    def setUpClass(cls):
        # stdin is a pipe: if this test dies, the tool sees EOF and exits.
        cls.proc = subprocess.Popen([TOOL], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
        try:
            line = cls.proc.stdout.readline()
            if not line.startswith("PORT "):
                raise RuntimeError("admin_serve did not start: %r" % line)
            cls.port = int(line.split()[1])
        except BaseException:
            cls.stop_tool()
            raise

    @classmethod
    def stop_tool(cls):
        if cls.proc is None:
            return
        if cls.proc.poll() is None:
            cls.proc.send_signal(signal.SIGTERM)
            try:
                cls.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                cls.proc.kill()
                cls.proc.wait()
        cls.proc.stdin.close()
        cls.proc.stdout.close()

    @classmethod
    def tearDownClass(cls):
        cls.stop_tool()
        # A clean SIGTERM exit: the tool stops the endpoint and frees everything.
        assert cls.proc.returncode == 0, cls.proc.returncode

    def request(self, method, path, version=11):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        if version == 10:
            conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), body
        finally:
            conn.close()

    def test_healthz(self):
        status, headers, body = self.request("GET", "/healthz")
        self.assertEqual((status, body), (200, b"ok\n"))
        self.assertEqual(headers["content-length"], "3")
        self.assertEqual(headers["connection"], "close")
        status, _, body = self.request("GET", "/healthz?probe=1", version=10)
        self.assertEqual((status, body), (200, b"ok\n"))

    def test_metrics_parse_with_reference_parser(self):
        status, headers, body = self.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        self.assertEqual(int(headers["content-length"]), len(body))
        fams = {f.name: f for f in text_string_to_metric_families(body.decode("utf-8"))}

        # The parser strips _total from counter family names.
        req = fams["brokerside_requests"]
        self.assertEqual(req.type, "counter")
        self.assertEqual(req.documentation, "Kafka requests by API.")
        got = {(s.labels["listener"], s.labels["api"]): s.value for s in req.samples}
        self.assertEqual(got, {("plain", "Produce"): 10.0, ("plain", "Fetch"): 25.0})

        conns = fams["brokerside_connections"]
        self.assertEqual(conns.type, "gauge")
        self.assertEqual([(s.labels, s.value) for s in conns.samples],
                         [({"listener": 'we"ird\\name\nx'}, 3.0)])

        tls = fams["brokerside_tls_handshake_failures"]
        self.assertEqual(tls.documentation, "TLS handshakes that failed.\nBy reason.")
        self.assertEqual(tls.samples[0].labels, {"reason": "unknown_ca"})

        lat = fams["brokerside_request_latency_seconds"]
        self.assertEqual(lat.type, "histogram")
        buckets = {s.labels["le"]: s.value for s in lat.samples if s.name.endswith("_bucket")}
        self.assertEqual(buckets["0.0005"], 1.0)
        self.assertEqual(buckets["0.005"], 2.0)
        self.assertEqual(buckets["0.25"], 3.0)
        self.assertEqual(buckets["10"], 3.0)
        self.assertEqual(buckets["+Inf"], 4.0)
        self.assertEqual(len(buckets), 15)
        values = sorted(buckets.values())
        self.assertEqual(values, [buckets[k] for k in buckets])  # cumulative: non-decreasing
        by_name = {s.name: s.value for s in lat.samples if not s.name.endswith("_bucket")}
        self.assertEqual(by_name["brokerside_request_latency_seconds_count"], 4.0)
        self.assertAlmostEqual(by_name["brokerside_request_latency_seconds_sum"], 30.2035)

        # The endpoint's own metrics are there too.
        self.assertIn("brokerside_admin_responses", fams)
        self.assertIn("brokerside_admin_connections", fams)

    def test_status_json(self):
        status, headers, body = self.request("GET", "/status")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/json")
        doc = json.loads(body)
        self.assertIsInstance(doc["version"], str)
        self.assertIsInstance(doc["uptime_s"], int)
        self.assertEqual(doc["listeners"], [{"name": "sample", "port": 0}])
        m = doc["metrics"]
        self.assertEqual(m['brokerside_requests_total{listener="plain",api="Produce"}'], 10)
        self.assertEqual(m['brokerside_request_latency_seconds{api="Produce"}']["count"], 4)

    def test_readiness_flip_and_errors(self):
        status, _, body = self.request("GET", "/readyz")
        if status == 503:  # not flipped yet by an earlier test
            self.assertEqual(body, b"not ready: warming up\n")
            self.proc.send_signal(signal.SIGUSR1)
            for _ in range(1000):  # wait for the signal to be handled; not a timing check
                status, _, body = self.request("GET", "/readyz")
                if status == 200:
                    break
        self.assertEqual((status, body), (200, b"ready\n"))

        status, headers, body = self.request("HEAD", "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        self.assertGreater(int(headers["content-length"]), 100)

        self.assertEqual(self.request("GET", "/nope")[0], 404)
        status, headers, _ = self.request("POST", "/healthz")
        self.assertEqual((status, headers["allow"]), (405, "GET, HEAD"))

        # Raw socket: a malformed request line gets 400 and the connection closes.
        with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT) as s:
            s.sendall(b"GET /healthz HTTP/9.9\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data)


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False).result.wasSuccessful() else 1)
