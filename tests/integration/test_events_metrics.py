"""Metric snapshots (EMF) through the running daemon into metrics.ndjson."""
import os
import socket
import ssl
import time
import unittest

import harness


class MetricSnapshots(harness.DaemonTest):
    def test_emf_documents_count_tls_connections(self):
        certs = harness.make_cert_dir(os.path.join(self.tmp, "certs"))
        up = harness.EchoServer()
        self.addCleanup(up.close)
        cfg = self.base_config(up.port, streams=("metrics",), tls={
            "cert": certs + "/server.crt", "key": certs + "/server.key"})
        cfg["metrics"]["namespace"] = "Test/Brokerside"
        port = int(cfg["listeners"][0]["bind"].rsplit(":", 1)[1])
        d = self.daemon(cfg).start()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(certs + "/ca.crt")
        for i in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"hello-%d" % i)
                    self.assertEqual(s.recv(100), b"hello-%d" % i)
        path = os.path.join(self.tmp, "events", "metrics.ndjson")

        def total(name):
            """Sum of a counter's deltas over every document so far (per listener)."""
            n = 0
            for doc in harness.read_ndjson(path):
                if name in doc and doc.get("listener") == "clients":
                    n += doc[name]
            return n

        harness.wait_for(lambda: total("brokerside_connections_total") >= 3,
                         "3 connections in the EMF snapshots")
        self.assertEqual(d.stop(), 0)
        docs = harness.read_ndjson(path)
        now_ms = time.time() * 1000
        for doc in docs:
            aws = doc["_aws"]
            self.assertLess(abs(aws["Timestamp"] - now_ms), 3600 * 1000)
            for directive in aws["CloudWatchMetrics"]:
                self.assertEqual(directive["Namespace"], "Test/Brokerside")
                for dims in directive["Dimensions"]:
                    for dim in dims:
                        self.assertIn(dim, doc)
                for m in directive["Metrics"]:
                    self.assertIn(m["Name"], doc)
            self.assertEqual(doc["BrokerId"], "1")
        # Counters are deltas: the sum over all snapshots is the final count.
        self.assertEqual(total("brokerside_connections_total"), 3)
        self.assertEqual(total("brokerside_tls_handshakes_total"), 3)
        named = {m["Name"]: m["Unit"] for doc in docs
                 for dr in doc["_aws"]["CloudWatchMetrics"] for m in dr["Metrics"]}
        self.assertEqual(named["brokerside_connections_total"], "Count")
        self.assertGreaterEqual(total("brokerside_bytes_total"), 2 * 3 * len(b"hello-0"))


if __name__ == "__main__":
    unittest.main()
