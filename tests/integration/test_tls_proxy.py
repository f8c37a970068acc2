"""kcat over TLS through brokerside to a real Apache Kafka broker, and the admin endpoint.

These tests use a `tcp` listener (opaque bytes, no Kafka awareness), the way an operator runs
brokerside in front of a broker whose advertised.listeners names the sidecar: the module's real
Kafka cluster (harness.module_kafka, sidecar=True) advertises the sidecar's port on its client
listener, so after bootstrapping through the sidecar kcat's produce and fetch connections go to
the sidecar too. Every test checks that this really happened: the metadata kcat sees names only
the sidecar, and brokerside_bytes_total grows by at least the payload that was produced and
consumed.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import M_BYTES, metric  # noqa: E402


class TlsProxyTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.kc, self.bs, self.port = self.cluster(topics=("test:1",))
        self.addr = "127.0.0.1:%d" % self.port

    def test_metadata_names_only_the_sidecar(self):
        r = harness.kcat(self.addr, ["-L"], self.certs)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertIn("broker 1 at %s" % self.addr, out)
        self.assertNotIn(self.kc.node(1).client, out)

    def test_produce_and_consume_through_sidecar(self):
        before = metric(self.bs.metrics(), M_BYTES)
        msgs = ["message-%03d-%s" % (i, "x" * 200) for i in range(100)]
        harness.kcat_produce(self.addr, "test", msgs, self.certs)
        got = harness.kcat_consume(self.addr, "test", len(msgs), self.certs)
        self.assertEqual(got, msgs)
        after = metric(self.bs.metrics(), M_BYTES)
        payload = sum(len(m) for m in msgs)
        # Produced once and fetched once: both crossed the sidecar.
        self.assertGreaterEqual(after - before, 2 * payload,
                                "%s grew by %d only; traffic bypassed the sidecar?"
                                % (M_BYTES, after - before))

    def test_without_tls_the_port_does_not_serve_kafka(self):
        r = harness.kcat(self.addr, ["-L", "-m", "5"], timeout=60)
        self.assertNotEqual(r.returncode, 0, "plaintext Kafka was served on the TLS port")


class ThreeBrokerTest(harness.IntegrationTest):
    """Three real Kafka brokers, one brokerside process with one TLS listener per broker
    (each broker advertises its own sidecar listener)."""

    def test_every_broker_behind_its_listener(self):
        kc = self.kafka(nodes=3)
        ports = kc.sidecar_ports
        # Six single-replica partitions: Kafka spreads their leaders over the three brokers
        # (two each), so every listener must carry traffic.
        kc.reset_topics(["t3:6:1"])
        with harness.KafkaWire(kc.node(1).internal) as w:
            _, _, topics = w.metadata(["t3"])
        leader_of = {p: leader for p, (_, leader) in topics["t3"][1].items()}
        self.assertEqual(set(leader_of.values()), {1, 2, 3}, leader_of)
        listeners = [harness.tls_listener(self.certs, "127.0.0.1:%d" % ports[b], kc.node(b).client,
                                          name="broker%d" % b) for b in (1, 2, 3)]
        bs = self.start_brokerside(harness.base_config(harness.free_port(), listeners))
        harness.wait_http(bs.url("/readyz"), 200)
        bootstrap = "127.0.0.1:%d" % ports[2]

        r = harness.kcat(bootstrap, ["-L", "-t", "t3"], self.certs)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        for b in (1, 2, 3):
            self.assertIn("broker %d at 127.0.0.1:%d" % (b, ports[b]), out)
            self.assertNotIn(kc.node(b).client, out)
        leaders = {int(x) for x in re.findall(r"partition \d+, leader (\d+)", out)}
        self.assertEqual(leaders, {1, 2, 3}, "leaders not as set:\n" + out)
        before = bs.metrics()

        # Ten messages into each partition explicitly: unkeyed messages go
        # wherever the (sticky) partitioner puts them, often all into one
        # partition, which left a leader without traffic now and then.
        msgs, payload = [], {1: 0, 2: 0, 3: 0}
        for part in range(6):
            batch = ["p%d-%d:%s" % (part, i, "v" * 100) for i in range(10)]
            r = harness.kcat(bootstrap, ["-P", "-t", "t3", "-p", str(part),
                                         "-X", "message.timeout.ms=30000"], self.certs,
                             input="".join(m + "\n" for m in batch).encode())
            self.assertEqual(r.returncode, 0, r.stderr)
            msgs += batch
            payload[leader_of[part]] += sum(len(m) for m in batch)
        got = harness.kcat_consume(bootstrap, "t3", len(msgs), self.certs)
        self.assertEqual(sorted(got), sorted(msgs))

        after = bs.metrics()
        for b in leaders:
            grew = (metric(after, M_BYTES, listener="broker%d" % b)
                    - metric(before, M_BYTES, listener="broker%d" % b))
            # produced to and fetched from its partitions' leader: both crossed its listener
            self.assertGreaterEqual(grew, 2 * payload[b],
                                    "too few bytes through the listener of leader %d" % b)


class AdminEndpointTest(harness.IntegrationTest):

    def test_endpoints(self):
        db, bs, port = self.cluster()
        code, body = bs.get("/healthz")
        self.assertEqual(code, 200, body)
        harness.wait_http(bs.url("/readyz"), 200)

        # One real TLS connection, so the counters have something to count.
        harness.kcat_produce("127.0.0.1:%d" % port, "test", ["hello"], self.certs)
        m = bs.metrics()
        names = harness.metric_names(m)
        self.assertTrue(any(n.startswith(harness.M_CONNECTIONS_PREFIX) for n in names), names)
        conn_totals = [n for n in names
                       if n.startswith(harness.M_CONNECTIONS_PREFIX) and n.endswith("_total")]
        self.assertTrue(conn_totals, names)
        self.assertGreaterEqual(max(metric(m, n) for n in conn_totals), 1)
        self.assertGreater(metric(m, M_BYTES), 0)

        code, body = bs.get("/status")
        self.assertEqual(code, 200, body)
        status = json.loads(body)
        self.assertIsInstance(status, dict)
        self.assertIn("version", status)

        code, _ = bs.get("/no-such-endpoint")
        self.assertEqual(code, 404)


if __name__ == "__main__":
    harness.main()
